/** Where the control endpoint reports what an operator should see. */
export interface Logger {
  info(message: string): void
  warn(message: string): void
  error(message: string): void
  /** Events only worth seeing while investigating (a client that disconnected mid-request). Optional; stderrLogger prints them when MESHLET_DEBUG is set. */
  debug?(message: string): void
}

export const stderrLogger: Logger = {
  info: (m) => void process.stderr.write(`${m}\n`),
  warn: (m) => void process.stderr.write(`warning: ${m}\n`),
  error: (m) => void process.stderr.write(`error: ${m}\n`),
  debug: (m) => void (process.env.MESHLET_DEBUG ? process.stderr.write(`debug: ${m}\n`) : undefined),
}

export const silentLogger: Logger = { info: () => {}, warn: () => {}, error: () => {} }

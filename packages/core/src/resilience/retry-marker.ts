/**
 * Retries happen at one hop. Every retried attempt is marked (HTTP: `meshlet-attempt: <n>`, n ≥ 2;
 * gRPC: A6's `grpc-previous-rpc-attempts: <n - 1>`), and a server that receives a marked call does
 * not retry the calls it makes for it: otherwise retries multiply along a chain (3 attempts per
 * hop made 27 at the fourth service when it failed). The hop nearest the caller that retried keeps
 * retrying; the retry budget of each destination bounds the rest.
 */

/** The HTTP header that carries an attempt's number on retries (absent on first attempts). */
export const ATTEMPT_HEADER = 'meshlet-attempt'
/** gRPC A6's retry marker (the number of earlier attempts), which grpc-js sends too. */
export const GRPC_PREVIOUS_ATTEMPTS = 'grpc-previous-rpc-attempts'

const POSITIVE = /^[1-9]\d{0,5}$/

/** Whether an inbound call is a retry of its caller, from the two markers (malformed values count as absent). */
export function isRetriedCall(attemptHeader: string | string[] | undefined, previousAttempts: string | string[] | undefined): boolean {
  const a = Array.isArray(attemptHeader) ? attemptHeader[0] : attemptHeader
  if (a !== undefined && POSITIVE.test(a) && a !== '1') return true
  const p = Array.isArray(previousAttempts) ? previousAttempts[0] : previousAttempts
  return p !== undefined && POSITIVE.test(p)
}

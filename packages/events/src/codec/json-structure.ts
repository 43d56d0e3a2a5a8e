/**
 * One pass over JSON text that JSON.parse has already accepted, for what JSON.parse does not
 * tell: nesting deeper than the limit, member names repeated in an event object (JSON.parse keeps
 * the last silently, so a filter and a handler could read different ids), and where each element
 * of a batch array starts and ends (to hold every event of a batch to the per-event limit).
 * Structural characters are ASCII, so scanning UTF-16 code units is exact.
 */
import { eventInvalid } from './codec-errors.js'

export interface JsonStructureOptions {
  maxDepth: number
  /** 1: the text is one event object; 2: an array of event objects (a batch); 0: data, where repeated names are the application's business. */
  eventDepth: 0 | 1 | 2
}

/** [start, end) offsets of each element of a top-level array (code units); empty for an object. */
export type ElementSpans = Array<[number, number]>

export function scanJsonStructure(text: string, options: JsonStructureOptions): ElementSpans {
  const { maxDepth, eventDepth } = options
  const spans: ElementSpans = []
  // containers[d - 1] is true for an object at depth d
  const containers: boolean[] = []
  let depth = 0
  let expectKey = false
  let names: Set<string> | undefined
  let elementStart = -1
  let eventIndex = -1
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    switch (c) {
      case 0x7b: // {
      case 0x5b: { // [
        if (depth === 1 && elementStart < 0 && containers[0] === false) elementStart = i
        depth++
        if (depth > maxDepth) {
          throw eventInvalid(depth <= eventDepth ? 'event' : 'data', 'depth', `JSON nesting deeper than ${maxDepth} levels; flatten the data or raise maxJsonDepth`, eventIndex >= 0 ? eventIndex : undefined)
        }
        const isObject = c === 0x7b
        containers[depth - 1] = isObject
        expectKey = isObject
        if (isObject && depth === eventDepth) {
          names = new Set()
          if (eventDepth === 2) eventIndex++
        }
        break
      }
      case 0x7d: // }
      case 0x5d: // ]
        if (depth === 1 && c === 0x5d && elementStart >= 0) {
          spans.push([elementStart, i])
          elementStart = -1
        }
        depth--
        expectKey = false
        break
      case 0x2c: // ,
        if (depth === 1 && containers[0] === false && elementStart >= 0) {
          spans.push([elementStart, i])
          elementStart = -1
        }
        expectKey = containers[depth - 1] === true
        break
      case 0x3a: // :
        expectKey = false
        break
      case 0x22: { // "
        if (depth === 1 && elementStart < 0 && containers[0] === false) elementStart = i
        const start = i
        let escaped = false
        for (i++; i < text.length; i++) {
          const s = text.charCodeAt(i)
          if (s === 0x5c) {
            escaped = true
            i++
          } else if (s === 0x22) break
        }
        if (expectKey && depth === eventDepth && names !== undefined) {
          const raw = text.slice(start + 1, i)
          const name = escaped ? (JSON.parse(text.slice(start, i + 1)) as string) : raw
          if (names.has(name)) {
            throw eventInvalid(name, 'duplicate', `the member ${JSON.stringify(name)} appears twice in the event object; send each attribute once`, eventIndex >= 0 ? eventIndex : undefined)
          }
          names.add(name)
        }
        break
      }
      default:
        // a scalar element of the top-level array (number, true, false, null)
        if (depth === 1 && elementStart < 0 && containers[0] === false && c > 0x20) elementStart = i
    }
  }
  return spans
}

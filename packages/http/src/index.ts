export { meshAgent, MeshAgent, type MeshAgentOptions } from './mesh-agent.js'
export { replayableBody, ReplayableBody } from './http-call.js'
export { httpClassifier, httpProtocol, type HttpProtocolOptions } from './http-protocol.js'
export { meshHandler, createMeshServer, type MeshHandlerOptions } from './node-http.js'

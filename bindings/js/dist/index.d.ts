/**
 * wtdatagram for the browser: the layers of libwtdatagram over `WebTransport`
 * datagrams, speaking exactly its wire formats (and pywebtransport's).
 *
 * ```js
 * import { connect, ReliabilityLayer } from "wtdatagram";
 * const wt = await connect("https://127.0.0.1:4433/echo", { certificateHash: HEX });
 * const rel = new ReliabilityLayer(wt);
 * const id = await rel.send("hello");
 * console.log(await rel.nextReport(5000)); // { id, outcome: "delivered", attempts: 1 }
 * ```
 */
export { WtdError, type CloseInfo, type ErrorCode } from "./errors.js";
export { Float, float, MAX_DEPTH, type Value } from "./value.js";
export * as json from "./json.js";
export * as msgpack from "./msgpack.js";
export { createHeartbeat, decodeJson, decodeStructured, encodeJson, encodeStructured, heartbeatTime, HEARTBEAT_PREFIX, isHeartbeat, MAX_TYPE_LEN, type StructuredMessage, } from "./message.js";
export { PRIORITIES, type Overflow } from "./queue.js";
export { DatagramStream, type Bytes, type DatagramDuplex, type DatagramMessage, type DatagramSource, type QueueStats, type SessionLike, type StreamConfig, type StreamStats, } from "./stream.js";
export { ACK_TYPE, DATA_OVERHEAD, DATA_TYPE, decodeFrame, DedupWindow, encodeAck, encodeData, INITIAL_FLIGHT, ReliabilityLayer, unwrapSequence, type DeliveryOutcome, type DeliveryReport, type Frame, type ReliabilityConfig, type ReliabilityStats, } from "./reliability.js";
export { HEADER_SIZE, JsonSerializer, MsgPackSerializer, StructuredDatagramTransport, type ObjectClass, type ReceivedObject, type SendOptions, type Serializer, type SerializerOptions, type StructuredError, type StructuredErrorKind, type StructuredOptions, type StructuredStats, } from "./structured.js";
export { throughputTest, type ThroughputResult } from "./throughput.js";
export { connect, hashFromHex, type ConnectOptions } from "./connect.js";

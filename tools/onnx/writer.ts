/**
 * A minimal ONNX model writer: a protobuf encoder for the subset of `onnx.proto` that small
 * dense models need, with no dependency.
 *
 * Contract:
 * - Input: a `GraphSpec` (nodes in topological order, float/int64 initializers, float graph
 *   inputs/outputs whose dims are numbers or symbolic names such as "batch") and
 *   `ModelOptions`. `GraphBuilder` is a small convenience for building one.
 * - Output: the bytes of a `ModelProto` (ir_version 8, one opset import for the default
 *   domain, version 13 unless told otherwise, producer "vigil-tools").
 * - Deterministic: the same spec gives the same bytes (fields are written in a fixed order,
 *   attributes in insertion order, tensor data as little-endian `raw_data`).
 * - Failure: a malformed spec (wrong data length, non-integer int64, duplicate names, an
 *   unknown value name) throws an `Error` naming the problem; nothing is written half-way.
 * - It does not check operator semantics: ONNX Runtime does that when it loads the bytes.
 *
 * Field numbers follow onnx/onnx.proto3 (ModelProto, GraphProto, NodeProto, AttributeProto,
 * TensorProto, ValueInfoProto, TypeProto, TensorShapeProto, OperatorSetIdProto).
 */

// ---------------------------------------------------------------------------------------------
// Protobuf wire format
// ---------------------------------------------------------------------------------------------

const WIRE_VARINT = 0;
const WIRE_LEN = 2;
const WIRE_FIXED32 = 5;

const UINT64_MASK = (1n << 64n) - 1n;

/** Appends protobuf-encoded fields to a growable byte buffer. */
export class ProtoWriter {
  private buf = new Uint8Array(256);
  private len = 0;

  private ensure(extra: number): void {
    if (this.len + extra <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.len + extra) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.len));
    this.buf = next;
  }

  private byte(b: number): void {
    this.ensure(1);
    this.buf[this.len++] = b;
  }

  /**
   * A bare varint. Negative numbers are written as 64-bit two's complement (10 bytes), as
   * protobuf does for int32/int64; that is how `axes: [-1]` reaches the runtime.
   */
  rawVarint(value: number | bigint): void {
    if (typeof value === "number") {
      if (!Number.isSafeInteger(value)) throw new Error(`varint: ${value} is not a safe integer`);
      if (value >= 0) {
        let v = value;
        while (v >= 0x80) {
          this.byte((v % 0x80) | 0x80);
          v = Math.floor(v / 0x80);
        }
        this.byte(v);
        return;
      }
    }
    let v = BigInt.asUintN(64, BigInt(value)) & UINT64_MASK;
    while (v >= 0x80n) {
      this.byte(Number(v & 0x7fn) | 0x80);
      v >>= 7n;
    }
    this.byte(Number(v));
  }

  private tag(field: number, wire: number): void {
    this.rawVarint(field * 8 + wire);
  }

  /** int32 / int64 / enum field. */
  varint(field: number, value: number | bigint): void {
    this.tag(field, WIRE_VARINT);
    this.rawVarint(value);
  }

  /** `float` field (fixed32, little-endian IEEE 754). */
  float(field: number, value: number): void {
    this.tag(field, WIRE_FIXED32);
    this.ensure(4);
    new DataView(this.buf.buffer, this.buf.byteOffset).setFloat32(this.len, value, true);
    this.len += 4;
  }

  /** `bytes` field, or an embedded message already encoded. */
  bytes(field: number, data: Uint8Array): void {
    this.tag(field, WIRE_LEN);
    this.rawVarint(data.length);
    this.ensure(data.length);
    this.buf.set(data, this.len);
    this.len += data.length;
  }

  /** `string` field, UTF-8. */
  string(field: number, value: string): void {
    this.bytes(field, new TextEncoder().encode(value));
  }

  /** Embedded message field. */
  message(field: number, inner: ProtoWriter): void {
    this.bytes(field, inner.finish());
  }

  /** Packed `repeated float`. */
  packedFloats(field: number, values: readonly number[]): void {
    const data = new Uint8Array(values.length * 4);
    const view = new DataView(data.buffer);
    values.forEach((v, i) => view.setFloat32(i * 4, v, true));
    this.bytes(field, data);
  }

  /** Packed `repeated int64` (or int32). */
  packedVarints(field: number, values: readonly (number | bigint)[]): void {
    const inner = new ProtoWriter();
    for (const v of values) inner.rawVarint(v);
    this.bytes(field, inner.finish());
  }

  /** A copy of the bytes written so far. */
  finish(): Uint8Array {
    return this.buf.slice(0, this.len);
  }
}

// ---------------------------------------------------------------------------------------------
// ONNX model description
// ---------------------------------------------------------------------------------------------

/** TensorProto.DataType values this writer supports. */
export const DataType = { float: 1, int64: 7 } as const;
export type DataTypeName = keyof typeof DataType;

/** AttributeProto.AttributeType values this writer supports. */
const AttributeType = { float: 1, int: 2, string: 3, floats: 6, ints: 7 } as const;

/** A tensor dimension: a fixed size, or a symbolic name (`dim_param`) such as "batch". */
export type Dim = number | string;

export type AttributeValue =
  | { type: "float"; value: number }
  | { type: "int"; value: number }
  | { type: "string"; value: string }
  | { type: "floats"; value: readonly number[] }
  | { type: "ints"; value: readonly number[] };

/** Typed attribute constructors: `{ transB: attr.int(1), alpha: attr.float(1) }`. */
export const attr = {
  float: (value: number): AttributeValue => ({ type: "float", value }),
  int: (value: number): AttributeValue => ({ type: "int", value }),
  string: (value: string): AttributeValue => ({ type: "string", value }),
  floats: (value: readonly number[]): AttributeValue => ({ type: "floats", value }),
  ints: (value: readonly number[]): AttributeValue => ({ type: "ints", value }),
};

export interface TensorSpec {
  name: string;
  dataType: DataTypeName;
  dims: readonly number[];
  /** Row-major values; length must be the product of `dims`. */
  values: ArrayLike<number>;
}

export interface NodeSpec {
  opType: string;
  inputs: readonly string[];
  outputs: readonly string[];
  name?: string;
  attributes?: Readonly<Record<string, AttributeValue>>;
}

export interface ValueInfoSpec {
  name: string;
  /** Default "float". */
  elemType?: DataTypeName;
  shape: readonly Dim[];
}

export interface GraphSpec {
  name: string;
  nodes: readonly NodeSpec[];
  initializers: readonly TensorSpec[];
  inputs: readonly ValueInfoSpec[];
  outputs: readonly ValueInfoSpec[];
}

export interface ModelOptions {
  /** Default 8. */
  irVersion?: number;
  /** Default-domain opset version; default 13. */
  opsetVersion?: number;
  /** Default "vigil-tools". */
  producerName?: string;
  producerVersion?: string;
  docString?: string;
  /** ModelProto.metadata_props, written in insertion order. */
  metadata?: Readonly<Record<string, string>>;
}

// ---------------------------------------------------------------------------------------------
// Encoding
// ---------------------------------------------------------------------------------------------

function product(dims: readonly number[]): number {
  return dims.reduce((a, b) => a * b, 1);
}

function encodeTensor(t: TensorSpec): ProtoWriter {
  for (const d of t.dims) {
    if (!Number.isSafeInteger(d) || d < 0) throw new Error(`tensor ${t.name}: bad dim ${d}`);
  }
  const n = product(t.dims);
  if (t.values.length !== n) {
    throw new Error(`tensor ${t.name}: ${t.values.length} values for dims [${t.dims.join(",")}] (${n})`);
  }
  const w = new ProtoWriter();
  w.packedVarints(1, t.dims); // dims
  w.varint(2, DataType[t.dataType]); // data_type
  w.string(8, t.name); // name
  const raw = new Uint8Array(n * (t.dataType === "float" ? 4 : 8));
  const view = new DataView(raw.buffer);
  for (let i = 0; i < n; i++) {
    const v = t.values[i] as number;
    if (t.dataType === "float") {
      if (!Number.isFinite(v)) throw new Error(`tensor ${t.name}: value ${i} is not finite`);
      view.setFloat32(i * 4, v, true);
    } else {
      if (!Number.isSafeInteger(v)) throw new Error(`tensor ${t.name}: value ${i} is not an integer`);
      view.setBigInt64(i * 8, BigInt(v), true);
    }
  }
  w.bytes(9, raw); // raw_data
  return w;
}

function encodeAttribute(name: string, a: AttributeValue): ProtoWriter {
  const w = new ProtoWriter();
  w.string(1, name); // name
  w.varint(20, AttributeType[a.type]); // type
  switch (a.type) {
    case "float":
      w.float(2, a.value); // f
      break;
    case "int":
      if (!Number.isSafeInteger(a.value)) throw new Error(`attribute ${name}: ${a.value} is not an integer`);
      w.varint(3, a.value); // i
      break;
    case "string":
      w.string(4, a.value); // s
      break;
    case "floats":
      w.packedFloats(7, a.value); // floats
      break;
    case "ints":
      for (const v of a.value) {
        if (!Number.isSafeInteger(v)) throw new Error(`attribute ${name}: ${v} is not an integer`);
      }
      w.packedVarints(8, a.value); // ints
      break;
  }
  return w;
}

function encodeNode(n: NodeSpec, index: number): ProtoWriter {
  const w = new ProtoWriter();
  for (const i of n.inputs) w.string(1, i); // input
  for (const o of n.outputs) w.string(2, o); // output
  w.string(3, n.name ?? `${n.opType}_${index}`); // name
  w.string(4, n.opType); // op_type
  for (const [name, value] of Object.entries(n.attributes ?? {})) {
    w.message(5, encodeAttribute(name, value)); // attribute
  }
  return w;
}

function encodeValueInfo(v: ValueInfoSpec): ProtoWriter {
  const shape = new ProtoWriter();
  for (const d of v.shape) {
    const dim = new ProtoWriter();
    if (typeof d === "number") {
      if (!Number.isSafeInteger(d) || d < 0) throw new Error(`value ${v.name}: bad dim ${d}`);
      dim.varint(1, d); // dim_value
    } else {
      if (d.length === 0) throw new Error(`value ${v.name}: empty symbolic dim`);
      dim.string(2, d); // dim_param
    }
    shape.message(1, dim); // TensorShapeProto.dim
  }
  const tensorType = new ProtoWriter();
  tensorType.varint(1, DataType[v.elemType ?? "float"]); // elem_type
  tensorType.message(2, shape); // shape
  const type = new ProtoWriter();
  type.message(1, tensorType); // TypeProto.tensor_type
  const w = new ProtoWriter();
  w.string(1, v.name); // name
  w.message(2, type); // type
  return w;
}

/** Checks that every node input is defined before use and every graph output is produced. */
function checkGraph(g: GraphSpec): void {
  const defined = new Set<string>();
  const define = (name: string, what: string): void => {
    if (defined.has(name)) throw new Error(`graph ${g.name}: ${what} ${name} defined twice`);
    defined.add(name);
  };
  for (const i of g.inputs) define(i.name, "input");
  for (const t of g.initializers) define(t.name, "initializer");
  g.nodes.forEach((n, k) => {
    for (const i of n.inputs) {
      // An empty name is ONNX's way of leaving out an optional input.
      if (i !== "" && !defined.has(i))
        throw new Error(`graph ${g.name}: node ${k} (${n.opType}) reads unknown ${i}`);
    }
    for (const o of n.outputs) define(o, "value");
  });
  for (const o of g.outputs) {
    if (!defined.has(o.name)) throw new Error(`graph ${g.name}: output ${o.name} is never produced`);
  }
}

/** Encodes a whole model. */
export function encodeModel(graph: GraphSpec, options: ModelOptions = {}): Uint8Array {
  checkGraph(graph);
  const g = new ProtoWriter();
  graph.nodes.forEach((n, i) => g.message(1, encodeNode(n, i))); // node
  g.string(2, graph.name); // name
  for (const t of graph.initializers) g.message(5, encodeTensor(t)); // initializer
  for (const i of graph.inputs) g.message(11, encodeValueInfo(i)); // input
  for (const o of graph.outputs) g.message(12, encodeValueInfo(o)); // output

  const opset = new ProtoWriter();
  opset.string(1, ""); // domain: the default ONNX domain
  opset.varint(2, options.opsetVersion ?? 13); // version

  const m = new ProtoWriter();
  m.varint(1, options.irVersion ?? 8); // ir_version
  m.string(2, options.producerName ?? "vigil-tools"); // producer_name
  if (options.producerVersion !== undefined) m.string(3, options.producerVersion); // producer_version
  if (options.docString !== undefined) m.string(6, options.docString); // doc_string
  m.message(7, g); // graph
  m.message(8, opset); // opset_import
  for (const [key, value] of Object.entries(options.metadata ?? {})) {
    const entry = new ProtoWriter();
    entry.string(1, key);
    entry.string(2, value);
    m.message(14, entry); // metadata_props
  }
  return m.finish();
}

// ---------------------------------------------------------------------------------------------
// Builder
// ---------------------------------------------------------------------------------------------

/**
 * Collects a graph step by step:
 *
 * ```ts
 * const g = new GraphBuilder("rul");
 * g.input("input", ["batch", 5, 3]);
 * g.initializer("W", [1, 15], weights);
 * g.initializer("b", [1], [50]);
 * const flat = g.node("Flatten", ["input"], { axis: attr.int(1) });
 * g.node("Gemm", [flat, "W", "b"], { transB: attr.int(1) }, "rul");
 * g.output("rul", ["batch", 1]);
 * const bytes = g.encode();
 * ```
 */
export class GraphBuilder {
  private readonly nodes: NodeSpec[] = [];
  private readonly initializers: TensorSpec[] = [];
  private readonly inputs: ValueInfoSpec[] = [];
  private readonly outputs: ValueInfoSpec[] = [];

  constructor(private readonly name: string) {}

  /** Declares a graph input (float unless `elemType` says otherwise). Returns its name. */
  input(name: string, shape: readonly Dim[], elemType: DataTypeName = "float"): string {
    this.inputs.push({ name, shape, elemType });
    return name;
  }

  /** Declares a graph output; a node must produce a value of that name. */
  output(name: string, shape: readonly Dim[], elemType: DataTypeName = "float"): void {
    this.outputs.push({ name, shape, elemType });
  }

  /** Adds a constant tensor. Returns its name. */
  initializer(
    name: string,
    dims: readonly number[],
    values: ArrayLike<number>,
    dataType: DataTypeName = "float",
  ): string {
    this.initializers.push({ name, dims, values, dataType });
    return name;
  }

  /**
   * Adds a single-output node. The output is named `output`, or `<opType>_<n>_out` when not
   * given. Returns the output name, so calls chain.
   */
  node(
    opType: string,
    inputs: readonly string[],
    attributes: Readonly<Record<string, AttributeValue>> = {},
    output?: string,
  ): string {
    const index = this.nodes.length;
    const out = output ?? `${opType}_${index}_out`;
    this.nodes.push({ opType, inputs, outputs: [out], name: `${opType}_${index}`, attributes });
    return out;
  }

  /** The graph described so far. */
  build(): GraphSpec {
    return {
      name: this.name,
      nodes: [...this.nodes],
      initializers: [...this.initializers],
      inputs: [...this.inputs],
      outputs: [...this.outputs],
    };
  }

  /** The ModelProto bytes of the graph. */
  encode(options: ModelOptions = {}): Uint8Array {
    return encodeModel(this.build(), options);
  }
}

/**
 * Adds `Gemm(x, W, b)` with `W` given as rows `[out][in]` (stored `[out, in]`, `transB = 1`),
 * i.e. `y = x · Wᵀ + b` for `x` of shape `[batch, in]`. Returns the output name.
 */
export function addDense(
  g: GraphBuilder,
  x: string,
  name: string,
  W: readonly (readonly number[])[],
  b: readonly number[],
  output?: string,
): string {
  const out = W.length;
  const inp = W[0]?.length ?? 0;
  if (out === 0 || inp === 0) throw new Error(`dense ${name}: empty weight matrix`);
  if (W.some((row) => row.length !== inp)) throw new Error(`dense ${name}: ragged weight matrix`);
  if (b.length !== out) throw new Error(`dense ${name}: ${b.length} biases for ${out} outputs`);
  g.initializer(`${name}.W`, [out, inp], W.flat());
  g.initializer(`${name}.b`, [out], b);
  return g.node("Gemm", [x, `${name}.W`, `${name}.b`], { transB: attr.int(1) }, output);
}

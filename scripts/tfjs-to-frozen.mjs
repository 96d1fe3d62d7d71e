// tfjs-to-frozen.mjs turns a TensorFlow.js graph model into a binary TensorFlow frozen GraphDef
// (frozen.pb, weights as Const nodes) and computes reference outputs for fixed inputs with the
// pure-JavaScript @tensorflow/tfjs CPU backend. OpenEAS's Go converter is tested against them.
//
//   node scripts/tfjs-to-frozen.mjs --model M.json|model.min.js --out DIR [--name N]
//
// Writes DIR/frozen.pb (fused ops as tfjs ships them), DIR/frozen-unfused.pb (_FusedConv2D,
// _FusedMatMul and FusedDepthwiseConv2dNative split into plain TF ops) and DIR/reference.json
// (inputs and outputs as base64 little-endian data). The reference comes from the original
// model and weights as tfjs loads them; the script also runs the unfused graph with the
// dequantized weights and fails unless both agree, which checks dequantization and un-fusing.
// Node resolves @tensorflow/tfjs from NODE_PATH (scripts/tf-fixtures.sh sets it).
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

function parseArgs(argv) {
  const a = {};
  for (let i = 0; i < argv.length; i += 2) a[argv[i].replace(/^--/, '')] = argv[i + 1];
  if (!a.model || !a.out) throw new Error('usage: --model FILE --out DIR');
  return a;
}

// loadModel reads model.json + binary shards, or the base64 .min.js modules nsfwjs ships.
function loadModel(file) {
  const dir = path.dirname(file);
  if (file.endsWith('.min.js')) {
    const m = require(path.resolve(file));
    const bufs = m.weightsManifest.flatMap((g) => g.paths.map((p) => {
      const s = require(path.resolve(dir, p + '.min.js'));
      return Buffer.from(typeof s === 'string' ? s : s.default, 'base64');
    }));
    return { model: m, data: Buffer.concat(bufs) };
  }
  const m = JSON.parse(fs.readFileSync(file, 'utf8'));
  const bufs = m.weightsManifest.flatMap((g) => g.paths.map((p) => fs.readFileSync(path.join(dir, p))));
  return { model: m, data: Buffer.concat(bufs) };
}

const DTYPES = {
  DT_FLOAT: 1, DT_DOUBLE: 2, DT_INT32: 3, DT_UINT8: 4, DT_INT16: 5, DT_INT8: 6, DT_STRING: 7,
  DT_INT64: 9, DT_BOOL: 10, DT_HALF: 19, DT_UINT16: 17, DT_UINT32: 22, DT_UINT64: 23,
};
const tfjsToDT = { float32: 'DT_FLOAT', int32: 'DT_INT32', bool: 'DT_BOOL', string: 'DT_STRING' };

// dequantize returns each weight as tfjs would hold it: float32, int32 or bool arrays.
function dequantize(specs, data) {
  const out = {};
  let off = 0;
  for (const w of specs) {
    const n = w.shape.reduce((x, y) => x * y, 1);
    const q = w.quantization;
    let arr;
    if (q) {
      const bytes = { uint8: 1, uint16: 2, float16: 2 }[q.dtype];
      const raw = data.subarray(off, off + n * bytes);
      off += n * bytes;
      const f = new Float32Array(n);
      if (q.dtype === 'float16') {
        const h = new Uint16Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.length));
        for (let i = 0; i < n; i++) f[i] = halfToFloat(h[i]);
      } else {
        const v = q.dtype === 'uint8' ? raw : new Uint16Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.length));
        for (let i = 0; i < n; i++) f[i] = v[i] * q.scale + q.min;
      }
      arr = w.dtype === 'int32' ? Int32Array.from(f, Math.round) : f;
    } else {
      const size = w.dtype === 'bool' ? 1 : 4;
      const raw = data.subarray(off, off + n * size);
      off += n * size;
      const ab = raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.length);
      arr = w.dtype === 'int32' ? new Int32Array(ab) : w.dtype === 'bool' ? new Uint8Array(ab) : new Float32Array(ab);
    }
    out[w.name] = { dtype: w.dtype, shape: w.shape, data: arr };
  }
  return out;
}

function halfToFloat(h) {
  const s = (h & 0x8000) ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

// unfuse rewrites tfjs's fused ops into the plain TF ops they stand for.
function unfuse(nodes) {
  const out = [];
  for (const n of nodes) {
    const plain = { _FusedConv2D: 'Conv2D', _FusedMatMul: 'MatMul', FusedDepthwiseConv2dNative: 'DepthwiseConv2dNative' }[n.op];
    if (!plain) { out.push(n); continue; }
    const ops = (n.attr.fused_ops?.list?.s || []).map((s) => Buffer.from(s, 'base64').toString());
    const inputs = n.input.filter((i) => !i.startsWith('^'));
    const attr = { ...n.attr };
    for (const k of ['fused_ops', 'num_args', 'epsilon', 'leakyrelu_alpha', 'num_host_args', 'filter_format']) delete attr[k];
    const T = { T: n.attr.T || { type: 'DT_FLOAT' } };
    let cur = n.name + '/' + plain;
    out.push({ name: cur, op: plain, input: inputs.slice(0, 2), attr });
    let arg = 2;
    for (const op of ops) {
      const name = n.name + '/' + op;
      if (op === 'BiasAdd') {
        const a = { ...T };
        if (n.attr.data_format) a.data_format = n.attr.data_format;
        out.push({ name, op, input: [cur, inputs[arg++]], attr: a });
      } else if (op === 'Relu' || op === 'Relu6' || op === 'Sigmoid' || op === 'Tanh' || op === 'Elu') {
        out.push({ name, op, input: [cur], attr: T });
      } else if (op === 'Prelu') {
        out.push({ name, op, input: [cur, inputs[arg++]], attr: T });
      } else if (op === 'LeakyRelu') {
        out.push({ name, op, input: [cur], attr: { ...T, alpha: { f: n.attr.leakyrelu_alpha?.f ?? 0.2 } } });
      } else {
        throw new Error(`unfuse ${n.name}: fused op ${op} not handled`);
      }
      cur = name;
    }
    out.push({ name: n.name, op: 'Identity', input: [cur], attr: T });
  }
  return out;
}

// --- protobuf encoding of a GraphDef given in protobuf-JSON form (as tfjs stores it) ---
class W {
  constructor() { this.parts = []; }
  varint(v) {
    let x = BigInt.asUintN(64, BigInt(v));
    const b = [];
    while (x >= 0x80n) { b.push(Number(x & 0x7fn) | 0x80); x >>= 7n; }
    b.push(Number(x));
    this.parts.push(Buffer.from(b));
  }
  tag(f, wt) { this.varint((f << 3) | wt); }
  int(f, v) { if (v !== undefined && v !== null && BigInt(v) !== 0n) { this.tag(f, 0); this.varint(v); } }
  bytes(f, buf) { this.tag(f, 2); this.varint(buf.length); this.parts.push(buf); }
  str(f, s) { if (s) this.bytes(f, Buffer.from(s, 'utf8')); }
  msg(f, enc) { const w = new W(); enc(w); this.bytes(f, w.done()); }
  packedVarints(f, vs) { if (!vs?.length) return; const w = new W(); for (const v of vs) w.varint(v); this.bytes(f, w.done()); }
  packedFloats(f, vs) { if (!vs?.length) return; const b = Buffer.alloc(4 * vs.length); vs.forEach((v, i) => b.writeFloatLE(Number(v), i * 4)); this.bytes(f, b); }
  done() { return Buffer.concat(this.parts); }
}

const dt = (s) => { if (!(s in DTYPES)) throw new Error(`dtype ${s} not handled`); return DTYPES[s]; };
const encShape = (w, s) => {
  for (const d of s.dim || []) w.msg(2, (dw) => { dw.int(1, d.size); dw.str(2, d.name); });
  if (s.unknownRank) w.int(3, 1);
};
function encTensor(w, t) {
  w.int(1, dt(t.dtype));
  if (t.tensorShape) w.msg(2, (sw) => encShape(sw, t.tensorShape));
  if (t.tensorContent) w.bytes(4, Buffer.isBuffer(t.tensorContent) ? t.tensorContent : Buffer.from(t.tensorContent, 'base64'));
  w.packedFloats(5, t.floatVal);
  w.packedVarints(7, t.intVal);
  for (const s of t.stringVal || []) w.bytes(8, Buffer.from(s, 'base64'));
  w.packedVarints(10, t.int64Val);
  w.packedVarints(11, (t.boolVal || []).map((b) => (b ? 1 : 0)));
}
function encAttr(w, a) {
  if ('list' in a) {
    w.msg(1, (lw) => {
      const l = a.list;
      for (const s of l.s || []) lw.bytes(2, Buffer.from(s, 'base64'));
      lw.packedVarints(3, l.i);
      lw.packedFloats(4, l.f);
      lw.packedVarints(5, (l.b || []).map((b) => (b ? 1 : 0)));
      lw.packedVarints(6, (l.type || []).map(dt));
      for (const s of l.shape || []) lw.msg(7, (sw) => encShape(sw, s));
      for (const t of l.tensor || []) lw.msg(8, (tw) => encTensor(tw, t));
    });
  } else if ('s' in a) w.bytes(2, Buffer.from(a.s, 'base64'));
  else if ('i' in a) { w.tag(3, 0); w.varint(a.i); }
  else if ('f' in a) { w.tag(4, 5); const b = Buffer.alloc(4); b.writeFloatLE(Number(a.f)); w.parts.push(b); }
  else if ('b' in a) { w.tag(5, 0); w.varint(a.b ? 1 : 0); }
  else if ('type' in a) { w.tag(6, 0); w.varint(dt(a.type)); }
  else if ('shape' in a) w.msg(7, (sw) => encShape(sw, a.shape));
  else if ('tensor' in a) w.msg(8, (tw) => encTensor(tw, a.tensor));
  else if ('func' in a) w.msg(10, (fw) => fw.str(1, a.func.name));
  else throw new Error(`attr ${JSON.stringify(a)} not handled`);
}
function encGraph(nodes, versions) {
  const w = new W();
  for (const n of nodes) {
    w.msg(1, (nw) => {
      nw.str(1, n.name); nw.str(2, n.op);
      for (const i of n.input || []) nw.str(3, i);
      for (const k of Object.keys(n.attr || {}).sort()) {
        nw.msg(5, (ew) => { ew.str(1, k); ew.msg(2, (aw) => encAttr(aw, n.attr[k])); });
      }
    });
  }
  if (versions) w.msg(4, (vw) => { vw.int(1, versions.producer); vw.int(2, versions.minConsumer); });
  return w.done();
}

// freeze fills each weight into its Const node as tensor_content.
function freeze(nodes, weights) {
  return nodes.map((n) => {
    const wt = weights[n.name];
    if (n.op !== 'Const' || !wt) return n;
    const dtype = tfjsToDT[wt.dtype];
    const content = Buffer.from(wt.data.buffer, wt.data.byteOffset, wt.data.byteLength);
    const tensor = { dtype, tensorShape: { dim: wt.shape.map((s) => ({ size: s })) }, tensorContent: content };
    return { ...n, attr: { ...n.attr, dtype: { type: dtype }, value: { tensor } } };
  });
}

// rng is a fixed linear congruential generator: the same inputs on every run.
function rng(seed) {
  let s = seed >>> 0;
  return () => { s = (Math.imul(s, 1664525) + 1013904223) >>> 0; return s / 2 ** 32; };
}

function b64(arr) { return Buffer.from(arr.buffer, arr.byteOffset, arr.byteLength).toString('base64'); }

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const tf = require('@tensorflow/tfjs');
  await tf.setBackend('cpu');
  const { model, data } = loadModel(args.model);
  const specs = model.weightsManifest.flatMap((g) => g.weights);
  const nodes = model.modelTopology.node;
  const weights = dequantize(specs, data);
  fs.mkdirSync(args.out, { recursive: true });
  const versions = model.modelTopology.versions;
  fs.writeFileSync(path.join(args.out, 'frozen.pb'), encGraph(freeze(nodes, weights), versions));
  const unfused = unfuse(nodes);
  fs.writeFileSync(path.join(args.out, 'frozen-unfused.pb'), encGraph(freeze(unfused, weights), versions));

  const consumed = new Set(nodes.flatMap((n) => (n.input || []).map((i) => i.replace(/^\^/, '').replace(/:\d+$/, ''))));
  const outputs = nodes.filter((n) => !consumed.has(n.name) && n.op !== 'Const' && n.op !== 'Placeholder').map((n) => n.name);
  const rand = rng(12345);
  const feeds = {};
  const inputs = [];
  for (const n of nodes.filter((x) => x.op === 'Placeholder')) {
    const shape = n.attr.shape.shape.dim.map((d) => (Number(d.size) < 0 ? 1 : Number(d.size)));
    const size = shape.reduce((x, y) => x * y, 1);
    const isInt = n.attr.dtype.type === 'DT_INT32';
    const arr = isInt ? Int32Array.from({ length: size }, () => Math.floor(rand() * 256)) : Float32Array.from({ length: size }, () => rand());
    feeds[n.name] = tf.tensor(arr, shape, isInt ? 'int32' : 'float32');
    inputs.push({ name: n.name, dtype: isInt ? 'int32' : 'float32', shape, data: b64(arr) });
  }
  const run = async (m) => {
    const res = m.execute(feeds, outputs);
    const list = Array.isArray(res) ? res : [res];
    return Promise.all(list.map(async (t) => ({ dtype: t.dtype, shape: t.shape, data: await t.data() })));
  };
  const t0 = Date.now();
  const ref = await run(await tf.loadGraphModel(tf.io.fromMemory({
    modelTopology: model.modelTopology, weightSpecs: specs, weightData: new Uint8Array(data).buffer,
  })));
  const ms = Date.now() - t0;
  // The unfused graph with our dequantized weights must agree with the original.
  const wspecs = specs.map((s) => ({ name: s.name, shape: s.shape, dtype: s.dtype }));
  const wdata = Buffer.concat(specs.map((s) => Buffer.from(weights[s.name].data.buffer, weights[s.name].data.byteOffset, weights[s.name].data.byteLength)));
  const check = await run(await tf.loadGraphModel(tf.io.fromMemory({
    modelTopology: { ...model.modelTopology, node: unfused }, weightSpecs: wspecs, weightData: new Uint8Array(wdata).buffer,
  })));
  ref.forEach((r, i) => {
    let maxAbs = 0; let maxDiff = 0;
    for (let j = 0; j < r.data.length; j++) {
      maxAbs = Math.max(maxAbs, Math.abs(r.data[j]));
      maxDiff = Math.max(maxDiff, Math.abs(r.data[j] - check[i].data[j]));
    }
    if (maxDiff > 1e-5 * Math.max(maxAbs, 1e-6)) throw new Error(`unfused graph differs on ${outputs[i]}: ${maxDiff} (max |ref| ${maxAbs})`);
  });
  const reference = {
    model: args.name || path.basename(args.model), tfjs: tf.version.tfjs, tfjs_ms: ms,
    nodes: nodes.length, unfused_nodes: unfused.length, inputs,
    outputs: ref.map((r, i) => ({ name: outputs[i], dtype: r.dtype, shape: r.shape, data: b64(r.data) })),
  };
  fs.writeFileSync(path.join(args.out, 'reference.json'), JSON.stringify(reference, null, 1) + '\n');
  console.log(`${reference.model}: ${nodes.length} nodes (${unfused.length} unfused), outputs ${outputs.join(', ')}`);
}

main().catch((e) => { console.error(`tfjs-to-frozen: ${e.stack || e}`); process.exit(1); });

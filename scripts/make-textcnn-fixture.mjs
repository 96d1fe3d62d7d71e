// make-textcnn-fixture.mjs writes a small TextCNN text-embedding model, shaped like the seed's
// tf_security_textcnn, as a TensorFlow.js graph model (model.json whose modelTopology is the
// GraphDef in protobuf-JSON form, plus a binary weight shard, as tfjs-converter writes them).
// scripts/tfjs-to-frozen.mjs then turns it into frozen.pb and computes the reference outputs
// with @tensorflow/tfjs; scripts/make-textcnn-fixture.sh runs both.
//
//   node scripts/make-textcnn-fixture.mjs --out DIR
//
// The nodes are named and wired the way TensorFlow 1.15 builds and freezes this model
// (frozen variables are a Const plus their "/read" Identity):
//   input_ids_a_1      Placeholder int32 [-1, SEQ]
//   embedding_lookup   GatherV2(embedding/W/read, input_ids_a_1, axis 0) + Identity
//   conv1d             tf.nn.conv1d: ExpandDims(x, 1) → Conv2D(ExpandDims(filter, 0)) → Squeeze([1])
//   conv1d/BiasAdd, conv1d/Relu
//   Max                reduce_max over time (axis 1)
//   dense/MatMul, dense/BiasAdd
//   l2_normalize       tf.nn.l2_normalize(x, axis=1): Square → Sum(keep_dims) → Maximum(1e-12)
//                      → Rsqrt → Mul named "l2_normalize"
// Weights are pseudo-random from a fixed seed: the same files on every run.
import fs from 'node:fs';
import path from 'node:path';

const SEQ = 32; // tokens per request
const VOCAB = 500;
const EMB = 16; // embedding width
const FILTERS = 32;
const KERNEL = 3; // conv1d window
const OUT = 16; // embedding returned by l2_normalize

function parseArgs(argv) {
  const a = {};
  for (let i = 0; i < argv.length; i += 2) a[argv[i].replace(/^--/, '')] = argv[i + 1];
  if (!a.out) throw new Error('usage: --out DIR');
  return a;
}

// rng is a fixed linear congruential generator (not the reference inputs' seed).
function rng(seed) {
  let s = seed >>> 0;
  return () => { s = (Math.imul(s, 1664525) + 1013904223) >>> 0; return s / 2 ** 32; };
}

const rand = rng(20211117);
// uniform(-scale, scale), Glorot-like scales so activations stay O(1).
const uniform = (n, scale) => Float32Array.from({ length: n }, () => (2 * rand() - 1) * scale);

const nodes = [];
const weights = []; // [{name, shape, dtype, data}]
const dims = (shape) => ({ dim: shape.map((s) => ({ size: String(s) })) });
const T = (dtype = 'DT_FLOAT') => ({ type: dtype });

// constant adds a Const node whose value lives in the weight shard, as tfjs-converter stores every Const.
function constant(name, shape, dtype, data) {
  const dt = dtype === 'int32' ? 'DT_INT32' : 'DT_FLOAT';
  nodes.push({ name, op: 'Const', attr: { value: { tensor: { dtype: dt, tensorShape: dims(shape) } }, dtype: T(dt) } });
  weights.push({ name, shape, dtype, data: dtype === 'int32' ? Int32Array.from(data) : Float32Array.from(data) });
  return name;
}
function node(name, op, input, attr = {}) {
  nodes.push({ name, op, input, attr });
  return name;
}
const ints = (xs) => ({ list: { i: xs.map(String) } });
const str = (s) => ({ s: Buffer.from(s).toString('base64') });

node('input_ids_a_1', 'Placeholder', [], { dtype: T('DT_INT32'), shape: { shape: dims([-1, SEQ]) } });

constant('embedding/W', [VOCAB, EMB], 'float32', uniform(VOCAB * EMB, 1));
node('embedding/W/read', 'Identity', ['embedding/W'], { T: T() });
constant('embedding_lookup/axis', [], 'int32', [0]);
node('embedding_lookup', 'GatherV2', ['embedding/W/read', 'input_ids_a_1', 'embedding_lookup/axis'], {
  Tparams: T(), Tindices: T('DT_INT32'), Taxis: T('DT_INT32'), batch_dims: { i: '0' },
});
node('embedding_lookup/Identity', 'Identity', ['embedding_lookup'], { T: T() });

constant('conv/W', [KERNEL, EMB, FILTERS], 'float32', uniform(KERNEL * EMB * FILTERS, Math.sqrt(6 / (KERNEL * EMB + FILTERS))));
node('conv/W/read', 'Identity', ['conv/W'], { T: T() });
constant('conv/b', [FILTERS], 'float32', uniform(FILTERS, 0.1));
node('conv/b/read', 'Identity', ['conv/b'], { T: T() });
constant('conv1d/ExpandDims/dim', [], 'int32', [1]);
node('conv1d/ExpandDims', 'ExpandDims', ['embedding_lookup/Identity', 'conv1d/ExpandDims/dim'], { T: T(), Tdim: T('DT_INT32') });
constant('conv1d/ExpandDims_1/dim', [], 'int32', [0]);
node('conv1d/ExpandDims_1', 'ExpandDims', ['conv/W/read', 'conv1d/ExpandDims_1/dim'], { T: T(), Tdim: T('DT_INT32') });
node('conv1d', 'Conv2D', ['conv1d/ExpandDims', 'conv1d/ExpandDims_1'], {
  T: T(), strides: ints([1, 1, 1, 1]), padding: str('VALID'), data_format: str('NHWC'),
  dilations: ints([1, 1, 1, 1]), use_cudnn_on_gpu: { b: true }, explicit_paddings: { list: {} },
});
node('conv1d/Squeeze', 'Squeeze', ['conv1d'], { T: T(), squeeze_dims: ints([1]) });
node('conv1d/BiasAdd', 'BiasAdd', ['conv1d/Squeeze', 'conv/b/read'], { T: T(), data_format: str('NHWC') });
node('conv1d/Relu', 'Relu', ['conv1d/BiasAdd'], { T: T() });

constant('Max/reduction_indices', [], 'int32', [1]);
node('Max', 'Max', ['conv1d/Relu', 'Max/reduction_indices'], { T: T(), Tidx: T('DT_INT32'), keep_dims: { b: false } });

constant('dense/kernel', [FILTERS, OUT], 'float32', uniform(FILTERS * OUT, Math.sqrt(6 / (FILTERS + OUT))));
node('dense/kernel/read', 'Identity', ['dense/kernel'], { T: T() });
constant('dense/bias', [OUT], 'float32', uniform(OUT, 0.1));
node('dense/bias/read', 'Identity', ['dense/bias'], { T: T() });
node('dense/MatMul', 'MatMul', ['Max', 'dense/kernel/read'], { T: T(), transpose_a: { b: false }, transpose_b: { b: false } });
node('dense/BiasAdd', 'BiasAdd', ['dense/MatMul', 'dense/bias/read'], { T: T(), data_format: str('NHWC') });

node('l2_normalize/Square', 'Square', ['dense/BiasAdd'], { T: T() });
constant('l2_normalize/Sum/reduction_indices', [], 'int32', [1]);
node('l2_normalize/Sum', 'Sum', ['l2_normalize/Square', 'l2_normalize/Sum/reduction_indices'], { T: T(), Tidx: T('DT_INT32'), keep_dims: { b: true } });
constant('l2_normalize/Maximum/y', [], 'float32', [1e-12]);
node('l2_normalize/Maximum', 'Maximum', ['l2_normalize/Sum', 'l2_normalize/Maximum/y'], { T: T() });
node('l2_normalize/Rsqrt', 'Rsqrt', ['l2_normalize/Maximum'], { T: T() });
node('l2_normalize', 'Mul', ['dense/BiasAdd', 'l2_normalize/Rsqrt'], { T: T() });

const args = parseArgs(process.argv.slice(2));
fs.mkdirSync(args.out, { recursive: true });
const shard = Buffer.concat(weights.map((w) => Buffer.from(w.data.buffer, w.data.byteOffset, w.data.byteLength)));
fs.writeFileSync(path.join(args.out, 'group1-shard1of1.bin'), shard);
const sig = (name, dtype, shape) => ({ [name]: { name, dtype, tensorShape: dims(shape) } });
const model = {
  format: 'graph-model',
  generatedBy: 'openeas scripts/make-textcnn-fixture.mjs (TF 1.15 TextCNN layout)',
  convertedBy: 'openeas scripts/make-textcnn-fixture.mjs',
  userDefinedMetadata: {
    signature: { inputs: sig('input_ids_a_1:0', 'DT_INT32', [-1, SEQ]), outputs: sig('l2_normalize:0', 'DT_FLOAT', [-1, OUT]) },
  },
  modelTopology: { node: nodes, library: {}, versions: { producer: 134 } },
  weightsManifest: [{ paths: ['group1-shard1of1.bin'], weights: weights.map(({ name, shape, dtype }) => ({ name, shape, dtype })) }],
};
fs.writeFileSync(path.join(args.out, 'model.json'), JSON.stringify(model));
console.log(`textcnn: ${nodes.length} nodes, ${shard.length} weight bytes`);

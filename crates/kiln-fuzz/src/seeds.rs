//! Valid inputs that Kiln itself writes, the starting points of every mutation: checkpoints of
//! every dtype and several layer kinds, and compiled inference graphs that use most of the op
//! set (products, convolutions, pooling, attention, layer norm, gathers, reductions).

use kiln_core::nn::functional as F;
use kiln_core::{manual_seed, no_grad, DType, Tensor};
use kiln_graph::{artifact, compile};
use kiln_nn::layers::{
    CausalDecoderBlock, Conv2d, Embedding, Flatten, Linear, MaxPool2d, ReLU, Sequential,
};
use kiln_nn::{checkpoint, Module, ModuleBase, StateDict};
use std::collections::HashMap;
use std::path::Path;

fn cnn() -> Sequential {
    Sequential::new()
        .append(Conv2d::new(1, 4, 3))
        .append(ReLU::new())
        .append(MaxPool2d::new(2))
        .append(Flatten::new())
        .append(Linear::new(4 * 3 * 3, 5))
}

fn mlp() -> Sequential {
    Sequential::new()
        .append(Linear::new(6, 8))
        .append(ReLU::new())
        .append(Linear::new(8, 3))
}

/// safetensors files: model state dicts (with metadata) and one tensor of every dtype.
pub fn checkpoints() -> Vec<Vec<u8>> {
    manual_seed(1);
    let meta = HashMap::from([
        ("kiln.model".to_string(), "cnn".to_string()),
        ("kiln.classes".to_string(), "5".to_string()),
    ]);
    let mut dtypes = StateDict::new();
    let v = Tensor::from_vec(vec![1.5f64, -2.0, 0.25, 4.0, 0.0, -0.5], [2, 3]);
    for d in DType::ALL {
        dtypes.insert(format!("t.{}", d.name()), v.to_dtype(d));
    }
    dtypes.insert("scalar", Tensor::scalar(3.0, DType::F32));
    dtypes.insert("empty", Tensor::zeros([0, 4], DType::F32));
    vec![
        checkpoint::to_bytes(&cnn().state_dict(), &meta),
        checkpoint::to_bytes(&mlp().state_dict(), &HashMap::new()),
        checkpoint::to_bytes(&dtypes, &HashMap::new()),
    ]
}

/// Graph files of compiled inference functions, written through `artifact::save`.
pub fn graphs(dir: &Path) -> Vec<Vec<u8>> {
    manual_seed(2);
    let mut out = Vec::new();
    let mut dynamic_seed = Vec::new();
    let mut save = |name: &str, graph: kiln_graph::Graph| {
        let path = dir.join(name);
        artifact::save(&graph, &path).expect("seed graph saves");
        out.push(std::fs::read(&path).expect("seed graph reads"));
    };
    no_grad(|| {
        let net = mlp();
        let mut f = compile(|xs: &[Tensor]| vec![F::softmax(&net.forward(&xs[0]), -1)]);
        save("mlp.kgraph", f.graph(&[Tensor::randn([2, 6], DType::F32)]));

        let net = cnn();
        let mut f = compile(|xs: &[Tensor]| {
            let logits = net.forward(&xs[0]);
            vec![F::log_softmax(&logits, 1), logits.argmax(1, false)]
        });
        save(
            "cnn.kgraph",
            f.graph(&[Tensor::randn([2, 1, 8, 8], DType::F32)]),
        );
        // The same with a symbolic batch dim.
        let mut f =
            compile(|xs: &[Tensor]| vec![F::log_softmax(&net.forward(&xs[0]), 1)]).dynamic_batch();
        let dynamic = f
            .dynamic_graph(&[Tensor::randn([2, 1, 8, 8], DType::F32)])
            .expect("a dynamic graph");
        let path = dir.join("cnn-dynamic.kgraph");
        artifact::save_dynamic(&dynamic, &path).expect("seed graph saves");
        dynamic_seed = std::fs::read(&path).expect("seed graph reads");

        let emb = Embedding::new(11, 8);
        let block = CausalDecoderBlock::new(8, 2);
        let head = Linear::new(8, 11);
        let mut f = compile(|xs: &[Tensor]| {
            let h = block.forward(&emb.forward(&xs[0]));
            vec![head.forward(&h).sum([1], false)]
        });
        let tokens = Tensor::from_vec((0..10).map(|i| i % 11).collect::<Vec<i64>>(), [2, 5]);
        save("gpt.kgraph", f.graph(&[tokens]));

        // Layout and index ops: gather, index_select, cat, slices, reductions, where.
        let w = Tensor::randn([4, 6], DType::F32);
        let mut f = compile(|xs: &[Tensor]| {
            let (x, idx) = (&xs[0], &xs[1]);
            let picked = x.gather(1, idx);
            let rows = w.index_select(0, &idx.narrow(1, 0, 1).reshape([3]));
            let both = Tensor::cat(&[&picked, &rows.narrow(1, 0, 2)], 1);
            let pos = both.gt_scalar(0.0);
            let y = Tensor::where_(&pos, &both, &both.exp());
            vec![y.amax([0], true).permute([1, 0]), y.sum([1], false).gelu()]
        });
        let idx = Tensor::from_vec(vec![0i64, 2, 1, 3, 3, 0], [3, 2]);
        save(
            "index.kgraph",
            f.graph(&[Tensor::randn([3, 6], DType::F32), idx]),
        );
    });
    out.push(dynamic_seed);
    out
}

/// The model of the trainer-checkpoint seeds.
pub fn trainer_model() -> Sequential {
    Sequential::new()
        .append(Linear::new(4, 3))
        .append(ReLU::new())
        .append(Linear::new(3, 2))
}

/// A training checkpoint directory (after two epochs of Adam, with callback state and an
/// EarlyStopping best-weights tensor) as the bytes of its two files: (model, trainer).
pub fn trainer_checkpoint(dir: &Path) -> (Vec<u8>, Vec<u8>) {
    use kiln_nn::optim::{Adam, Optimizer};
    use kiln_train::checkpoint::{self as ckpt, Snapshot};
    use kiln_train::{History, Logs};
    use serde_json::json;
    manual_seed(3);
    let m = trainer_model();
    let mut opt = Adam::new(m.parameters(), 1e-2);
    m.forward(&Tensor::rand([2, 4], DType::F32))
        .sum_all()
        .backward();
    opt.step();
    let logs: Logs = [("loss".to_string(), 0.5), ("lr".to_string(), 1e-2)].into();
    let mut callback_tensors = StateDict::new();
    for (name, t) in m.state_dict().iter() {
        callback_tensors.insert(format!("early_stopping.{name}"), t.clone());
    }
    let snap = Snapshot {
        epochs_done: 2,
        global_step: 6,
        rng: (3, 128),
        callbacks: [
            (
                "model_checkpoint".to_string(),
                json!({"best": 0.5, "best_epoch": 2}),
            ),
            (
                "early_stopping".to_string(),
                json!({"best": 0.5, "wait": 1, "stopped_epoch": null}),
            ),
        ]
        .into_iter()
        .collect(),
        callback_tensors,
        history: History {
            epochs: vec![logs.clone(), logs],
        },
    };
    let meta = HashMap::from([("kiln.model".to_string(), "mlp".to_string())]);
    ckpt::save(dir, &m, &opt, &snap, &meta).expect("seed checkpoint saves");
    let read = |f: &str| std::fs::read(dir.join(f)).expect("seed checkpoint reads");
    (read("model.safetensors"), read("trainer.safetensors"))
}

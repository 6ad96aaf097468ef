//! Times the matmul shapes of the CNN and GPT benchmark steps (layouts as autograd builds them).
use kiln_core::{DType, Tensor};
use std::time::Instant;

fn time(name: &str, flops: f64, f: impl Fn() -> Tensor) {
    for _ in 0..3 {
        let _ = f();
    }
    let reps = 20;
    let mut best = f64::MAX;
    let mut tot = 0.0;
    for _ in 0..reps {
        let t = Instant::now();
        let y = f();
        std::hint::black_box(&y);
        let e = t.elapsed().as_secs_f64();
        best = best.min(e);
        tot += e;
    }
    println!(
        "{name:40} best {:8.3} ms  mean {:8.3} ms  {:6.1} GFLOPS(best)",
        best * 1e3,
        tot / reps as f64 * 1e3,
        flops / best / 1e9
    );
}

fn main() {
    let r = |s: &[usize]| Tensor::randn(s.to_vec(), DType::F32);
    let (n, l1, l2) = (64usize, 1024usize, 256usize);
    let w1 = r(&[32, 27]);
    let c1 = r(&[n, 27, l1]);
    let g1 = r(&[n, 32, l1]);
    let w2 = r(&[64, 288]);
    let c2 = r(&[n, 288, l2]);
    let g2 = r(&[n, 64, l2]);
    let f = |m: usize, nn: usize, k: usize, b: usize| (2 * m * nn * k * b) as f64;
    time("conv1 fwd W@cols", f(32, l1, 27, n), || w1.matmul(&c1));
    time("conv1 dW g@cols^T", f(32, 27, l1, n), || {
        g1.matmul(&c1.transpose(-2, -1))
    });
    time("conv2 fwd W@cols", f(64, l2, 288, n), || w2.matmul(&c2));
    time("conv2 dW g@cols^T", f(64, 288, l2, n), || {
        g2.matmul(&c2.transpose(-2, -1))
    });
    time("conv2 dX W^T@g", f(288, l2, 64, n), || w2.t().matmul(&g2));
    let x = r(&[64, 4096]);
    let w = r(&[128, 4096]);
    let g = r(&[64, 128]);
    time("lin1 fwd x@W^T", f(64, 128, 4096, 1), || x.matmul(&w.t()));
    time("lin1 dW g^T@x", f(128, 4096, 64, 1), || g.t().matmul(&x));
    time("lin1 dX g@W", f(64, 4096, 128, 1), || g.matmul(&w));
    // GPT
    let h = r(&[16, 128, 256]);
    let wq = r(&[768, 256]);
    let gq = r(&[16, 128, 768]);
    time("gpt qkv h@W^T", f(2048, 768, 256, 1), || h.matmul(&wq.t()));
    time("gpt qkv dW g^T@h (batched)", f(768, 256, 128, 16), || {
        gq.transpose(-2, -1).matmul(&h)
    });
    time("gpt qkv dX g@W", f(2048, 256, 768, 1), || gq.matmul(&wq));
    let h2 = h.reshape([2048, 256]);
    let gq2 = gq.reshape([2048, 768]);
    time("gpt qkv dW 2-D g^T@h", f(768, 256, 2048, 1), || {
        gq2.t().matmul(&h2)
    });
    let w1 = r(&[1024, 256]);
    let g1 = r(&[16, 128, 1024]);
    time("gpt mlp1 dW 2-D g^T@h", f(1024, 256, 2048, 1), || {
        g1.reshape([2048, 1024]).t().matmul(&h2)
    });
    time("gpt mlp1 fwd h@W^T", f(2048, 1024, 256, 1), || {
        h.matmul(&w1.t())
    });
    let b1 = r(&[1024]);
    time(
        "gpt mlp1 fwd h@W^T + b (linear)",
        f(2048, 1024, 256, 1),
        || kiln_core::ops::dispatch(kiln_core::ops::Op::Matmul, &[&h, &w1.t(), &b1]),
    );
    let q = r(&[16, 4, 128, 64]);
    let kt = r(&[16, 4, 128, 64]);
    time("gpt att q@k^T", f(128, 128, 64, 64), || {
        q.matmul(&kt.transpose(-2, -1))
    });
    let p = r(&[16, 4, 128, 128]);
    time("gpt att p@v", f(128, 64, 128, 64), || p.matmul(&kt));
    let h4 = r(&[16, 128, 1024]);
    let w4 = r(&[256, 1024]);
    time("gpt mlp2 h@W^T", f(2048, 256, 1024, 1), || {
        h4.matmul(&w4.t())
    });
    // MLP 784-512-512-10, batch 128
    let x = r(&[128, 784]);
    let w1 = r(&[512, 784]);
    let w2 = r(&[512, 512]);
    let h = r(&[128, 512]);
    let g = r(&[128, 512]);
    time("mlp fwd1 x@W1^T", f(128, 512, 784, 1), || x.matmul(&w1.t()));
    time("mlp fwd2 h@W2^T", f(128, 512, 512, 1), || h.matmul(&w2.t()));
    let b1 = r(&[512]);
    time("mlp fwd1 x@W1^T + b (linear)", f(128, 512, 784, 1), || {
        kiln_core::ops::dispatch(kiln_core::ops::Op::Matmul, &[&x, &w1.t(), &b1])
    });
    time("mlp dW1 g^T@x", f(512, 784, 128, 1), || g.t().matmul(&x));
    time("mlp dW2 g^T@h", f(512, 512, 128, 1), || g.t().matmul(&h));
    time("mlp dX2 g@W2", f(128, 512, 512, 1), || g.matmul(&w2));
    let x1 = r(&[1, 784]);
    time("infer b1 x@W1^T + b", f(1, 512, 784, 1), || {
        kiln_core::ops::dispatch(kiln_core::ops::Op::Matmul, &[&x1, &w1.t(), &b1])
    });
    let h1 = r(&[1, 512]);
    time("infer b1 h@W2^T + b", f(1, 512, 512, 1), || {
        kiln_core::ops::dispatch(kiln_core::ops::Op::Matmul, &[&h1, &w2.t(), &b1])
    });
    let a = r(&[256, 256]);
    time("256^3", f(256, 256, 256, 1), || a.matmul(&a));
    let a = r(&[1024, 1024]);
    time("1024^3", f(1024, 1024, 1024, 1), || a.matmul(&a));
}

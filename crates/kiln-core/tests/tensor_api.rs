//! The public Tensor API: creation, random generation, dtypes, views and strides, indexing,
//! elementwise math, reductions, broadcasting, operators, printing and matmul. Expected values
//! are written by hand or computed with naive reference loops over plain `Vec`s.

use kiln_core::{bf16, f16, manual_seed, no_grad, set_num_threads, DType, Generator, Tensor};
use std::sync::{Mutex, MutexGuard};

/// Tests that draw from the global generator take this lock so seeded sequences stay
/// deterministic while tests run in parallel.
static GLOBAL_RNG: Mutex<()> = Mutex::new(());

fn global_rng() -> MutexGuard<'static, ()> {
    GLOBAL_RNG.lock().unwrap_or_else(|e| e.into_inner())
}

fn f64s(t: &Tensor) -> Vec<f64> {
    t.to_vec::<f64>()
}

fn i64s(t: &Tensor) -> Vec<i64> {
    t.to_vec::<i64>()
}

fn arange(n: usize) -> Tensor {
    Tensor::arange(0.0, n as f64, 1.0, DType::F64)
}

#[track_caller]
fn assert_close(got: &[f64], want: &[f64], tol: f64) {
    assert_close_named("", got, want, tol);
}

#[track_caller]
fn assert_close_named(name: &str, got: &[f64], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "{name}: lengths differ");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= tol * (1.0 + w.abs()) || (g.is_nan() && w.is_nan()),
            "{name} element {i}: got {g}, want {w}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// creation

#[test]
fn constant_creation() {
    let z = Tensor::zeros([2, 3], DType::F32);
    assert_eq!(z.shape(), &[2, 3]);
    assert_eq!(z.dtype(), DType::F32);
    assert_eq!(z.to_vec::<f32>(), vec![0.0; 6]);
    let o = Tensor::ones([4], DType::I64);
    assert_eq!(o.to_vec::<i64>(), vec![1; 4]);
    let f = Tensor::full([2, 2], 2.5, DType::F64);
    assert_eq!(f64s(&f), vec![2.5; 4]);
    let fi = Tensor::full([3], 7.0, DType::U8);
    assert_eq!(fi.to_vec::<u8>(), vec![7; 3]);
    let b = Tensor::full([2], 1.0, DType::Bool);
    assert_eq!(b.to_vec::<bool>(), vec![true, true]);
    let s = Tensor::scalar(-3.25, DType::F64);
    assert_eq!(s.rank(), 0);
    assert_eq!(s.numel(), 1);
    assert_eq!(s.item::<f64>(), -3.25);
    let e = Tensor::zeros([0, 3], DType::F32);
    assert_eq!(e.numel(), 0);
    assert_eq!(e.to_vec::<f32>(), Vec::<f32>::new());
    let h = Tensor::ones([3], DType::BF16);
    assert_eq!(h.to_vec::<bf16>(), vec![bf16::ONE; 3]);
}

#[test]
fn like_constructors_keep_shape_and_dtype() {
    let x = Tensor::from_vec(vec![1i32, 2, 3, 4, 5, 6], [3, 2]);
    for (t, v) in [
        (x.zeros_like(), 0.0),
        (x.ones_like(), 1.0),
        (x.full_like(9.0), 9.0),
    ] {
        assert_eq!(t.shape(), &[3, 2]);
        assert_eq!(t.dtype(), DType::I32);
        assert_eq!(f64s(&t), vec![v; 6]);
    }
    let y = Tensor::zeros([5, 2], DType::F16);
    let _g = global_rng();
    for t in [y.rand_like(), y.randn_like()] {
        assert_eq!(t.shape(), &[5, 2]);
        assert_eq!(t.dtype(), DType::F16);
    }
}

#[test]
fn ranges_and_eye() {
    assert_eq!(
        i64s(&Tensor::arange(0.0, 5.0, 1.0, DType::I64)),
        vec![0, 1, 2, 3, 4]
    );
    assert_eq!(
        Tensor::arange(1.0, 2.0, 0.25, DType::F32).to_vec::<f32>(),
        vec![1.0, 1.25, 1.5, 1.75]
    );
    assert_eq!(
        i64s(&Tensor::arange(5.0, 0.0, -2.0, DType::I64)),
        vec![5, 3, 1]
    );
    assert_eq!(Tensor::arange(3.0, 3.0, 1.0, DType::F32).shape(), &[0]);
    assert_eq!(
        f64s(&Tensor::linspace(0.0, 1.0, 5, DType::F64)),
        vec![0.0, 0.25, 0.5, 0.75, 1.0]
    );
    let l = Tensor::linspace(-1.0, 0.3, 7, DType::F32).to_vec::<f32>();
    assert_eq!(l[0], -1.0);
    assert_eq!(l[6], 0.3); // exact end point
    assert_eq!(f64s(&Tensor::linspace(2.0, 5.0, 1, DType::F64)), vec![2.0]);
    assert_eq!(Tensor::linspace(0.0, 1.0, 0, DType::F64).shape(), &[0]);
    let e = Tensor::eye(3, DType::F32);
    assert_eq!(
        e.to_vec2::<f32>(),
        vec![
            vec![1.0, 0.0, 0.0],
            vec![0.0, 1.0, 0.0],
            vec![0.0, 0.0, 1.0]
        ]
    );
}

#[test]
fn from_vec_and_readback() {
    let x = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0], [2, 3]);
    assert_eq!(x.shape(), &[2, 3]);
    assert_eq!(x.dims(), &[2, 3]);
    assert_eq!(x.rank(), 2);
    assert_eq!(x.ndim(), 2);
    assert_eq!(x.size(-1), 3);
    assert_eq!(x.size(0), 2);
    assert_eq!(
        x.to_vec2::<f32>(),
        vec![vec![1.0, 2.0, 3.0], vec![4.0, 5.0, 6.0]]
    );
    assert_eq!(x.to_vec::<i64>(), vec![1, 2, 3, 4, 5, 6]);
    assert_eq!(x.i((1, 2)).item::<f32>(), 6.0);
    assert_eq!(x.i((0, 1)).item::<i32>(), 2);
    let s = Tensor::from_slice(&[true, false], [2]);
    assert_eq!(s.dtype(), DType::Bool);
    assert_eq!(s.to_vec::<u8>(), vec![1, 0]);
    assert_eq!(x.t().to_vec2::<f32>()[2], vec![3.0, 6.0]);
}

// ---------------------------------------------------------------------------------------------
// random

#[test]
fn seeded_global_generator_is_deterministic() {
    let _g = global_rng();
    manual_seed(7);
    let a = f64s(&Tensor::randn([1000], DType::F64));
    let a2 = f64s(&Tensor::rand([10], DType::F32));
    manual_seed(7);
    let b = f64s(&Tensor::randn([1000], DType::F64));
    let b2 = f64s(&Tensor::rand([10], DType::F32));
    assert_eq!(a, b);
    assert_eq!(a2, b2);
    // The next draw continues the stream: different values.
    let c = f64s(&Tensor::randn([1000], DType::F64));
    assert_ne!(a, c);
    // A different seed gives a different stream.
    manual_seed(8);
    assert_ne!(a, f64s(&Tensor::randn([1000], DType::F64)));
}

#[test]
fn explicit_generators_are_independent_of_the_global_one() {
    let _g = global_rng();
    manual_seed(11);
    let a = f64s(&Tensor::randn([64], DType::F64));
    manual_seed(11);
    // Drawing from an explicit generator must not advance the global stream.
    let mut gen = Generator::new(11);
    let from_gen = f64s(&Tensor::randn_with([64], DType::F64, &mut gen));
    let _ = Tensor::rand_with([1000], DType::F32, &mut gen);
    let b = f64s(&Tensor::randn([64], DType::F64));
    assert_eq!(a, b);
    // Same seed, same stream: global and explicit generators agree.
    assert_eq!(a, from_gen);
    // Explicit generators: reproducible, and seeds matter.
    let mut g1 = Generator::new(5);
    let mut g2 = Generator::new(5);
    let mut g3 = Generator::new(6);
    let x1 = f64s(&Tensor::rand_with([50], DType::F64, &mut g1));
    let x2 = f64s(&Tensor::rand_with([50], DType::F64, &mut g2));
    let x3 = f64s(&Tensor::rand_with([50], DType::F64, &mut g3));
    assert_eq!(x1, x2);
    assert_ne!(x1, x3);
    // State save/restore replays a draw.
    let (seed, offset) = (g1.seed(), g1.offset());
    let y1 = f64s(&Tensor::randn_with([33], DType::F64, &mut g1));
    let mut g4 = Generator::new(0);
    g4.set_state(seed, offset);
    assert_eq!(y1, f64s(&Tensor::randn_with([33], DType::F64, &mut g4)));
    // Consecutive draws never reuse samples.
    let mut g5 = Generator::new(9);
    let p = f64s(&Tensor::rand_with([3], DType::F64, &mut g5));
    let q = f64s(&Tensor::rand_with([3], DType::F64, &mut g5));
    assert!(p.iter().all(|v| !q.contains(v)));
}

fn mean_std(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let m = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (n - 1.0);
    (m, var.sqrt())
}

#[test]
fn randn_statistics() {
    let mut g = Generator::new(2024);
    let v = f64s(&Tensor::randn_with([100_000], DType::F64, &mut g));
    let (m, s) = mean_std(&v);
    assert!(m.abs() < 0.015, "mean {m}");
    assert!((s - 1.0).abs() < 0.015, "std {s}");
    let within1 = v.iter().filter(|x| x.abs() < 1.0).count() as f64 / v.len() as f64;
    assert!((within1 - 0.6827).abs() < 0.01, "P(|x|<1) = {within1}");
    let v32 = f64s(&Tensor::randn_with([100_000], DType::F32, &mut g));
    let (m, s) = mean_std(&v32);
    assert!(m.abs() < 0.015 && (s - 1.0).abs() < 0.015, "f32: {m} {s}");
}

#[test]
fn rand_is_in_unit_interval_for_every_float_dtype() {
    let mut g = Generator::new(77);
    for dtype in [DType::F32, DType::F64, DType::BF16, DType::F16] {
        let t = Tensor::rand_with([100_000], dtype, &mut g);
        assert_eq!(t.dtype(), dtype);
        let v = f64s(&t);
        assert!(
            v.iter().all(|&x| (0.0..1.0).contains(&x)),
            "{dtype}: a sample outside [0, 1): max {}",
            v.iter().cloned().fold(f64::MIN, f64::max)
        );
        let (m, s) = mean_std(&v);
        assert!((m - 0.5).abs() < 0.01, "{dtype} mean {m}");
        assert!((s - (1.0f64 / 12.0).sqrt()).abs() < 0.01, "{dtype} std {s}");
    }
}

#[test]
fn randint_and_bernoulli() {
    let mut g = Generator::new(3);
    let r = Tensor::randint_with(-3, 4, [10_000], &mut g);
    assert_eq!(r.dtype(), DType::I64);
    assert_eq!(r.shape(), &[10_000]);
    let v = i64s(&r);
    assert!(v.iter().all(|x| (-3..4).contains(x)));
    for k in -3..4 {
        let n = v.iter().filter(|&&x| x == k).count();
        assert!((1200..1650).contains(&n), "value {k} drawn {n} times");
    }
    {
        let _g = global_rng();
        let r = i64s(&Tensor::randint(10, 12, [2, 500]));
        assert!(r.iter().all(|x| *x == 10 || *x == 11));
        assert!(r.contains(&10) && r.contains(&11));
    }
    let p = Tensor::from_vec(
        [0.0, 1.0]
            .into_iter()
            .chain(std::iter::repeat_n(0.3, 20_000))
            .collect::<Vec<f64>>(),
        [20_002],
    );
    let b = p.bernoulli_with(&mut g);
    assert_eq!(b.dtype(), DType::F64);
    let bv = f64s(&b);
    assert_eq!(bv[0], 0.0);
    assert_eq!(bv[1], 1.0);
    assert!(bv.iter().all(|&x| x == 0.0 || x == 1.0));
    let frac = bv[2..].iter().sum::<f64>() / 20_000.0;
    assert!((frac - 0.3).abs() < 0.015, "{frac}");
    // p = 1 must always give 1, also in half precision (no sample may round up to 1).
    let ones = Tensor::ones([50_000], DType::BF16).bernoulli_with(&mut g);
    assert!(f64s(&ones).iter().all(|&x| x == 1.0));
    let _g = global_rng();
    let zeros = Tensor::zeros([100], DType::F32).bernoulli();
    assert!(f64s(&zeros).iter().all(|&x| x == 0.0));
}

#[test]
fn random_draws_do_not_depend_on_thread_count() {
    let draw = || {
        let mut g = Generator::new(99);
        let a = Tensor::randn_with([300_000], DType::F32, &mut g).to_vec::<f32>();
        let b = Tensor::rand_with([70_001], DType::F64, &mut g).to_vec::<f64>();
        (a, b)
    };
    set_num_threads(1);
    let one = draw();
    set_num_threads(2);
    let two = draw();
    assert!(one == two);
}

#[test]
fn column_sums_match_f64_references_at_any_thread_count() {
    // Sums over the leading dims of dense tensors (bias and layer-norm weight gradients):
    // small ones in one pass, large ones in bands of rows added afterwards. Values are exact
    // in f64 (multiples of 1/1024 below 2¹⁰), so any order of f64 additions gives the exact
    // column sum, which each result must equal after rounding to f32.
    let sums = |shape: &[usize], dims: &[usize]| {
        let n: usize = shape.iter().product();
        let cols: usize = shape[dims.len()..].iter().product();
        let values: Vec<f32> = (0..n)
            .map(|i| ((i * 7919 % 2_000_003) as f32 - 1_000_000.0) / 1024.0)
            .collect();
        let mut want = vec![0.0f64; cols];
        for (i, v) in values.iter().enumerate() {
            want[i % cols] += *v as f64;
        }
        let want: Vec<f32> = want.iter().map(|&w| w as f32).collect();
        let got = Tensor::from_vec(values, shape).sum(dims, false);
        assert_eq!(got.to_vec::<f32>(), want, "{shape:?} over {dims:?}");
        got.to_vec::<f32>()
    };
    let cases: [(&[usize], &[usize]); 5] = [
        (&[128, 512], &[0]),
        (&[2048, 1024], &[0]),
        (&[16, 131, 96], &[0, 1]),
        (&[5, 70_000], &[0]),
        (&[3, 50_000, 2], &[0, 1]),
    ];
    set_num_threads(1);
    let one: Vec<Vec<f32>> = cases.iter().map(|(s, d)| sums(s, d)).collect();
    set_num_threads(3);
    let three: Vec<Vec<f32>> = cases.iter().map(|(s, d)| sums(s, d)).collect();
    set_num_threads(2);
    assert!(one == three);
    // Rounding in f64 (not exact values): one thread and several give the same bits.
    let x = Tensor::randn([1000, 300], DType::F32);
    set_num_threads(1);
    let a = x.sum([0], false).to_vec::<f32>();
    set_num_threads(2);
    assert_eq!(a, x.sum([0], false).to_vec::<f32>());
}

// ---------------------------------------------------------------------------------------------
// dtypes

const ALL: [DType; DType::ALL.len()] = DType::ALL;

#[test]
fn casts_between_all_dtypes() {
    // Small whole numbers are exact in every numeric dtype.
    let vals = [0.0, 1.0, 2.0, 7.0, 100.0];
    for from in ALL {
        let x = Tensor::from_vec(vals.to_vec(), [5]).to_dtype(from);
        assert_eq!(x.dtype(), from);
        let src: Vec<f64> = if from == DType::Bool {
            vals.iter().map(|&v| (v != 0.0) as i32 as f64).collect()
        } else {
            vals.to_vec()
        };
        assert_eq!(f64s(&x), src, "{from}");
        for to in ALL {
            let y = x.to_dtype(to);
            assert_eq!(y.dtype(), to);
            assert_eq!(y.shape(), &[5]);
            let want: Vec<f64> = if to == DType::Bool {
                src.iter().map(|&v| (v != 0.0) as i32 as f64).collect()
            } else {
                src.clone()
            };
            assert_eq!(f64s(&y), want, "{from} -> {to}");
            if to != DType::Bool {
                assert_eq!(f64s(&y.to_dtype(from)), src, "{from} -> {to} -> {from}");
            }
        }
    }
}

#[test]
fn cast_rounding_and_truncation() {
    let x = Tensor::from_vec(vec![-1.7f64, 2.9, -0.2, 255.0], [4]);
    assert_eq!(i64s(&x.to_dtype(DType::I64)), vec![-1, 2, 0, 255]);
    assert_eq!(x.to_dtype(DType::I32).to_vec::<i32>(), vec![-1, 2, 0, 255]);
    assert_eq!(
        x.to_dtype(DType::Bool).to_vec::<bool>(),
        vec![true, true, true, true]
    );
    assert_eq!(x.to_dtype(DType::U8).to_vec::<u8>()[3], 255);
    // bf16 keeps 8 significant bits: 257 → 256, 1 + 2⁻⁸ → 1 (ties to even).
    let b = Tensor::from_vec(vec![257.0f32, 1.003_906_3, 0.5], [3]).to_dtype(DType::BF16);
    assert_eq!(f64s(&b), vec![256.0, 1.0, 0.5]);
    // f16: 11 significant bits, max 65504, tiny values flush to 0.
    let h = Tensor::from_vec(vec![2049.0f64, 65504.0, 1e-9, -0.25], [4]).to_dtype(DType::F16);
    assert_eq!(f64s(&h), vec![2048.0, 65504.0, 0.0, -0.25]);
    // f16 → bf16 → f32: 1/3 in f16 is 0.333251953125, which bf16 rounds to 0.333984375
    let third = Tensor::from_vec(vec![f16::from_f64(1.0 / 3.0)], [1]);
    assert_eq!(f64s(&third), vec![0.333251953125]);
    assert_eq!(f64s(&third.to_dtype(DType::BF16)), vec![0.333984375]);
    // i64 → f32 of a large value rounds to the nearest representable f32.
    let big = Tensor::from_vec(vec![16_777_217i64], [1]);
    assert_eq!(big.to_dtype(DType::F32).to_vec::<f32>(), vec![16_777_216.0]);
    // to_dtype of the same dtype is the same tensor.
    assert!(x.to_dtype(DType::F64).same(&x));
}

#[test]
fn integer_casts_wrap_and_narrow_integer_arithmetic_wraps() {
    // Between integer types a cast keeps the low bits, as C, NumPy and PyTorch do.
    let x = Tensor::from_vec(vec![300i64, -1, 65_536 + 7, i64::MAX], [4]);
    assert_eq!(x.to_dtype(DType::U8).to_vec::<u8>(), vec![44, 255, 7, 255]);
    assert_eq!(x.to_dtype(DType::I8).to_vec::<i8>(), vec![44, -1, 7, -1]);
    assert_eq!(
        x.to_dtype(DType::U16).to_vec::<u16>(),
        vec![300, 65_535, 7, 65_535]
    );
    assert_eq!(
        x.to_dtype(DType::U64).to_vec::<u64>(),
        vec![300, u64::MAX, 65_543, i64::MAX as u64]
    );
    // Exact above 2⁵³, where a cast through f64 would round.
    let big = Tensor::from_vec(vec![(1u64 << 60) + 1], [1]);
    assert_eq!(
        big.to_dtype(DType::I64).to_vec::<i64>(),
        vec![(1i64 << 60) + 1]
    );
    let a = Tensor::from_vec(vec![100i8, -128, 7], [3]);
    assert_eq!((&a + &a).to_vec::<i8>(), vec![-56, 0, 14]);
    let w = Tensor::from_vec(vec![65_535u16, 2], [2]);
    assert_eq!((&w * &w).to_vec::<u16>(), vec![1, 4]);
}

#[test]
fn integer_promotion_follows_numpy() {
    let t = |d: DType| Tensor::from_vec(vec![1i64, 2], [2]).to_dtype(d);
    let sum = |a: DType, b: DType| (&t(a) + &t(b)).dtype();
    assert_eq!(sum(DType::U8, DType::I8), DType::I16);
    assert_eq!(sum(DType::I16, DType::U16), DType::I32);
    assert_eq!(sum(DType::U32, DType::I32), DType::I64);
    assert_eq!(sum(DType::U64, DType::I64), DType::I64);
    assert_eq!(sum(DType::U8, DType::U32), DType::U32);
    assert_eq!(sum(DType::I8, DType::I64), DType::I64);
    assert_eq!(sum(DType::U16, DType::I64), DType::I64);
    assert_eq!(sum(DType::Bool, DType::I8), DType::I8);
    assert_eq!(sum(DType::U64, DType::F16), DType::F16);
}

#[test]
fn dtype_promotion_in_binary_ops() {
    let i = Tensor::from_vec(vec![1i64, 2, 3], [3]);
    let f = Tensor::from_vec(vec![0.5f32, 0.5, 0.5], [3]);
    let u = Tensor::from_vec(vec![1u8, 2, 3], [3]);
    let b = Tensor::from_vec(vec![true, false, true], [3]);
    let h = Tensor::from_vec(vec![f16::ONE; 3], [3]);
    let bh = Tensor::from_vec(vec![bf16::ONE; 3], [3]);
    assert_eq!((&i + &f).dtype(), DType::F32);
    assert_eq!(f64s(&(&i + &f)), vec![1.5, 2.5, 3.5]);
    assert_eq!((&i + &u).dtype(), DType::I64);
    assert_eq!((&u + &b).dtype(), DType::U8);
    assert_eq!(f64s(&(&u + &b)), vec![2.0, 2.0, 4.0]);
    assert_eq!((&h + &bh).dtype(), DType::F32);
    assert_eq!((&h + &i).dtype(), DType::F16);
    assert_eq!((&i / &i).dtype(), DType::F32);
    assert_eq!(
        f64s(&(&i / &Tensor::scalar(2.0, DType::I64))),
        vec![0.5, 1.0, 1.5]
    );
    assert_eq!(i.exp().dtype(), DType::F32);
    assert_eq!((&b + &b).dtype(), DType::Bool);
    assert_eq!((&b * &b).to_vec::<bool>(), vec![true, false, true]);
    assert_eq!(b.sum_all().dtype(), DType::I64);
}

// ---------------------------------------------------------------------------------------------
// views, strides, storage sharing

#[test]
fn strides_of_views() {
    let x = arange(24).reshape([2, 3, 4]);
    assert_eq!(x.strides(), &[12, 4, 1]);
    assert!(x.is_contiguous());
    let p = x.permute([2, 0, 1]);
    assert_eq!(p.shape(), &[4, 2, 3]);
    assert_eq!(p.strides(), &[1, 12, 4]);
    assert!(!p.is_contiguous());
    assert!(p.shares_storage(&x));
    let t = x.transpose(0, 1);
    assert_eq!(t.shape(), &[3, 2, 4]);
    assert_eq!(t.strides(), &[4, 12, 1]);
    let n = x.narrow(1, 1, 2);
    assert_eq!(n.shape(), &[2, 2, 4]);
    assert_eq!(n.strides(), &[12, 4, 1]);
    assert_eq!(n.layout().offset, 4);
    assert!(!n.is_contiguous());
    assert!(x.narrow(0, 1, 1).is_contiguous());
    let s = x.slice(2, 1, 4, 2);
    assert_eq!(s.shape(), &[2, 3, 2]);
    assert_eq!(s.strides(), &[12, 4, 2]);
    assert_eq!(f64s(&s.i((0, 0))), vec![1.0, 3.0]);
    let e = Tensor::ones([1, 4], DType::F32).expand([3, 4]);
    assert_eq!(e.strides(), &[0, 1]);
    assert!(!e.is_contiguous());
    let e2 = Tensor::ones([3, 1], DType::F32).expand([2, 3, 5]);
    assert_eq!(e2.strides(), &[0, 1, 0]);
    let c = p.contiguous();
    assert!(c.is_contiguous());
    assert!(!c.shares_storage(&x));
    assert_eq!(c.strides(), &[6, 3, 1]);
    // contiguous() of a contiguous tensor is free
    assert!(x.contiguous().same(&x));
    let u = x.unsqueeze(1);
    assert_eq!(u.shape(), &[2, 1, 3, 4]);
    assert!(u.shares_storage(&x));
    assert_eq!(x.reshape([6, 4]).strides(), &[4, 1]);
    assert!(x.reshape([6, 4]).shares_storage(&x));
}

#[test]
fn writes_through_views_are_visible_in_the_base() {
    let base = Tensor::zeros([3, 4], DType::F64);
    let v = base.narrow(1, 1, 2);
    no_grad(|| {
        v.copy_(&Tensor::from_vec(vec![1.0, 2.0], [2]));
    });
    assert_eq!(
        base.to_vec2::<f64>(),
        vec![
            vec![0.0, 1.0, 2.0, 0.0],
            vec![0.0, 1.0, 2.0, 0.0],
            vec![0.0, 1.0, 2.0, 0.0]
        ]
    );
    // through a transposed view: column 3 of base
    base.t().i(3).fill_(5.0);
    assert_eq!(f64s(&base.i((.., 3))), vec![5.0; 3]);
    // through a strided slice
    base.slice(0, 0, 3, 2).i((.., 0)).fill_(-1.0);
    assert_eq!(f64s(&base.i((.., 0))), vec![-1.0, 0.0, -1.0]);
    // and the view sees writes to the base
    base.add_scalar_(10.0);
    assert_eq!(f64s(&v.i(0)), vec![11.0, 12.0]);
    // version counter bumps on every write, shared by views
    let before = base.version();
    v.mul_scalar_(2.0);
    assert!(base.version() > before);
    assert_eq!(base.version(), v.version());
}

#[test]
fn reshape_of_non_contiguous_copies_in_logical_order() {
    let x = arange(12).reshape([3, 4]);
    let t = x.t(); // [4, 3]
    let flat = t.reshape([12]);
    assert_eq!(
        f64s(&flat),
        vec![0.0, 4.0, 8.0, 1.0, 5.0, 9.0, 2.0, 6.0, 10.0, 3.0, 7.0, 11.0]
    );
    assert!(!flat.shares_storage(&x));
    assert_eq!(
        t.reshape([2, 6]).to_vec2::<f64>(),
        vec![
            vec![0.0, 4.0, 8.0, 1.0, 5.0, 9.0],
            vec![2.0, 6.0, 10.0, 3.0, 7.0, 11.0]
        ]
    );
    // a reshape that only splits a dim of a view stays a view
    let n = arange(24).reshape([4, 6]).narrow(0, 1, 2);
    let v = n.view([2, 2, 3]);
    assert!(v.shares_storage(&n));
    assert_eq!(f64s(&v), (6..18).map(|i| i as f64).collect::<Vec<_>>());
    // transposed view can still be viewed when only inserting size-1 dims
    assert_eq!(t.view([4, 1, 3]).shape(), &[4, 1, 3]);
    // expanded tensors reshape to copies with repeated values
    let e = Tensor::from_vec(vec![1.0, 2.0], [2, 1]).expand([2, 3]);
    assert_eq!(f64s(&e.reshape([6])), vec![1.0, 1.0, 1.0, 2.0, 2.0, 2.0]);
    assert_eq!(f64s(&x.reshape([-1])), f64s(&x));
    assert_eq!(x.reshape([2, -1]).shape(), &[2, 6]);
    assert_eq!(x.flatten(0, 1).shape(), &[12]);
    assert_eq!(
        arange(24).reshape([2, 3, 4]).flatten(1, 2).shape(),
        &[2, 12]
    );
    assert_eq!(Tensor::scalar(1.0, DType::F32).flatten(0, 0).shape(), &[1]);
    assert_eq!(
        Tensor::zeros([1, 3, 1], DType::F32).squeeze_all().shape(),
        &[3]
    );
    assert_eq!(
        Tensor::zeros([2, 3], DType::F32).squeeze(0).shape(),
        &[2, 3]
    );
}

#[test]
fn transposed_copies_match_indexing() {
    // Copies of views whose last two dims are transposed (the blocked transpose path), for
    // four-byte and other element sizes, ragged block edges, leading batch dims, padded
    // column strides (a narrowed base) and a broadcast batch dim.
    for (rows, cols) in [(1, 70), (7, 9), (8, 8), (9, 33), (33, 130), (130, 17)] {
        // base[b, c, r] = b·1000 + c·(rows + 3) + r over rows + 3 columns, narrowed to rows.
        let width = rows + 3;
        let base: Vec<f64> = (0..2 * cols * width)
            .map(|i| ((i / (cols * width)) * 1000 + i % (cols * width)) as f64)
            .collect();
        let base = Tensor::from_vec(base, [2, cols, width]);
        let want: Vec<f64> = (0..2 * rows * cols)
            .map(|i| {
                let (b, r, c) = (i / (rows * cols), i / cols % rows, i % cols);
                (b * 1000 + c * width + r + 1) as f64
            })
            .collect();
        for dtype in [DType::F32, DType::F64, DType::I64, DType::I32] {
            let v = base.to_dtype(dtype).narrow(2, 1, rows).permute([0, 2, 1]);
            assert_eq!(v.shape(), &[2, rows, cols]);
            let got = v.contiguous();
            assert!(got.is_contiguous());
            assert_eq!(f64s(&got), want, "{dtype} [2, {rows}, {cols}]");
        }
        let view = Tensor::from_vec(
            (0..cols * width).map(|i| i as f32).collect::<Vec<_>>(),
            [cols, width],
        )
        .narrow(1, 1, rows)
        .t();
        let first = &want[..rows * cols];
        assert_eq!(f64s(&view.contiguous()), first, "2-d [{rows}, {cols}]");
        let broadcast = view.unsqueeze(0).expand([3, rows, cols]).contiguous();
        assert_eq!(f64s(&broadcast), first.repeat(3), "broadcast batch");
        let bools = view.gt_scalar(50.0);
        let want: Vec<f64> = first.iter().map(|&w| (w > 50.0) as u8 as f64).collect();
        assert_eq!(f64s(&bools.contiguous().to_dtype(DType::F64)), want);
    }
}

#[test]
#[should_panic(expected = "view: size [12] is not compatible with the strides")]
fn view_of_transposed_tensor_panics() {
    arange(12).reshape([3, 4]).t().view([12]);
}

// ---------------------------------------------------------------------------------------------
// indexing and joining

#[test]
fn basic_indexing() {
    let x = arange(24).reshape([2, 3, 4]);
    let a = x.i(1);
    assert_eq!(a.shape(), &[3, 4]);
    assert_eq!(f64s(&a), (12..24).map(|v| v as f64).collect::<Vec<_>>());
    let b = x.i((.., 1..3));
    assert_eq!(b.shape(), &[2, 2, 4]);
    assert_eq!(f64s(&b.i((1, 0))), vec![16.0, 17.0, 18.0, 19.0]);
    assert_eq!(f64s(&x.i((1, 2))), vec![20.0, 21.0, 22.0, 23.0]);
    assert_eq!(
        f64s(&x.i((.., .., 3))),
        vec![3.0, 7.0, 11.0, 15.0, 19.0, 23.0]
    );
    let c = x.i((0, 1..=2, ..2));
    assert_eq!(c.shape(), &[2, 2]);
    assert_eq!(f64s(&c), vec![4.0, 5.0, 8.0, 9.0]);
    assert_eq!(x.i(1..).shape(), &[1, 3, 4]);
    assert_eq!(x.i((.., 2..)).shape(), &[2, 1, 4]);
    assert_eq!(x.i((1, 1, 1)).rank(), 0);
    assert_eq!(x.i((1, 1, 1)).item::<f64>(), 17.0);
    // ranges past the end clamp like Python slices
    assert_eq!(x.i((.., 1..10)).shape(), &[2, 2, 4]);
    assert_eq!(x.i((.., 5..)).shape(), &[2, 0, 4]);
    // slicing with a step
    assert_eq!(f64s(&arange(10).slice(0, 1, 10, 3)), vec![1.0, 4.0, 7.0]);
    assert_eq!(f64s(&arange(10).slice(0, 8, 100, 5)), vec![8.0]);
}

#[test]
fn split_chunk_cat_stack() {
    let x = arange(10);
    let sizes = |v: Vec<Tensor>| v.iter().map(|t| t.shape()[0]).collect::<Vec<_>>();
    assert_eq!(sizes(x.split(3, 0)), vec![3, 3, 3, 1]);
    assert_eq!(sizes(x.split(10, 0)), vec![10]);
    assert_eq!(sizes(x.split(20, 0)), vec![10]);
    assert_eq!(sizes(x.chunk(4, 0)), vec![3, 3, 3, 1]);
    assert_eq!(sizes(x.chunk(5, 0)), vec![2, 2, 2, 2, 2]);
    assert_eq!(sizes(arange(6).chunk(4, 0)), vec![2, 2, 2]);
    assert_eq!(sizes(x.split_sizes(&[1, 4, 5], 0)), vec![1, 4, 5]);
    let parts = x.split(3, 0);
    assert_eq!(f64s(&parts[3]), vec![9.0]);
    assert_eq!(f64s(&parts[1]), vec![3.0, 4.0, 5.0]);
    let m = arange(6).reshape([2, 3]);
    let cols = m.split(2, 1);
    assert_eq!(cols[0].shape(), &[2, 2]);
    assert_eq!(f64s(&cols[1]), vec![2.0, 5.0]);
    // cat inverts split
    assert_eq!(f64s(&Tensor::cat(&parts, 0)), f64s(&x));
    assert_eq!(f64s(&Tensor::cat(&cols, 1)), f64s(&m));
    let c = Tensor::cat(&[&m, &m.affine(1.0, 10.0)], 0);
    assert_eq!(c.shape(), &[4, 3]);
    assert_eq!(f64s(&c.i(2)), vec![10.0, 11.0, 12.0]);
    let s = Tensor::stack(&[&m, &m.neg()], 1);
    assert_eq!(s.shape(), &[2, 2, 3]);
    assert_eq!(f64s(&s.i((0, 1))), vec![-0.0, -1.0, -2.0]);
    let s2 = Tensor::stack(&[arange(2), arange(2).affine(1.0, 5.0)], -1);
    assert_eq!(s2.to_vec2::<f64>(), vec![vec![0.0, 5.0], vec![1.0, 6.0]]);
    // cat of non-contiguous views
    let t = Tensor::cat(&[m.t(), m.t()], 1);
    assert_eq!(
        t.to_vec2::<f64>(),
        vec![
            vec![0.0, 3.0, 0.0, 3.0],
            vec![1.0, 4.0, 1.0, 4.0],
            vec![2.0, 5.0, 2.0, 5.0]
        ]
    );
}

#[test]
fn gather_scatter_index_select() {
    let x = Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], [2, 3]);
    let idx = Tensor::from_vec(vec![2i64, 0, 2], [3]);
    assert_eq!(
        x.index_select(1, &idx).to_vec2::<f64>(),
        vec![vec![3.0, 1.0, 3.0], vec![6.0, 4.0, 6.0]]
    );
    assert_eq!(
        x.index_select(0, &Tensor::from_vec(vec![1i32, 1], [2]))
            .to_vec2::<f64>(),
        vec![vec![4.0, 5.0, 6.0], vec![4.0, 5.0, 6.0]]
    );
    assert_eq!(
        x.t()
            .index_select(0, &Tensor::from_vec(vec![2i64], [1]))
            .to_vec2::<f64>(),
        vec![vec![3.0, 6.0]]
    );
    let base = Tensor::zeros([2, 3], DType::F64);
    let added = base.index_add(1, &idx, &x);
    // column 2 receives columns 0 and 2 of x; column 0 receives column 1
    assert_eq!(
        added.to_vec2::<f64>(),
        vec![vec![2.0, 0.0, 4.0], vec![5.0, 0.0, 10.0]]
    );
    let g = Tensor::from_vec(vec![0i64, 0, 2, 1], [2, 2]);
    assert_eq!(
        x.gather(1, &g).to_vec2::<f64>(),
        vec![vec![1.0, 1.0], vec![6.0, 5.0]]
    );
    let g0 = Tensor::from_vec(vec![1i64, 0, 1], [1, 3]);
    assert_eq!(x.gather(0, &g0).to_vec2::<f64>(), vec![vec![4.0, 2.0, 6.0]]);
    let src = Tensor::from_vec(vec![10.0, 20.0, 30.0, 40.0], [2, 2]);
    assert_eq!(
        Tensor::zeros([2, 3], DType::F64)
            .scatter_add(1, &g, &src)
            .to_vec2::<f64>(),
        vec![vec![30.0, 0.0, 0.0], vec![0.0, 40.0, 30.0]]
    );
    // integer tensors too
    let xi = Tensor::from_vec(vec![1i64, 2, 3], [3]);
    assert_eq!(
        i64s(&xi.index_add(
            0,
            &Tensor::from_vec(vec![0i64, 0], [2]),
            &Tensor::from_vec(vec![5i64, 6], [2])
        )),
        vec![12, 2, 3]
    );
}

#[test]
fn one_hot_where_masked_fill_tril_triu() {
    let c = Tensor::from_vec(vec![0i64, 2, 1], [3]);
    let oh = c.one_hot(3);
    assert_eq!(oh.dtype(), DType::I64);
    assert_eq!(
        oh.to_vec2::<i64>(),
        vec![vec![1, 0, 0], vec![0, 0, 1], vec![0, 1, 0]]
    );
    assert_eq!(
        Tensor::from_vec(vec![1u8, 0, 1, 1], [2, 2])
            .one_hot(2)
            .shape(),
        &[2, 2, 2]
    );
    let cond = Tensor::from_vec(vec![true, false], [2, 1]);
    let a = Tensor::from_vec(vec![1.0, 2.0, 3.0], [3]);
    let b = Tensor::scalar(-1.0, DType::F64);
    let w = Tensor::where_(&cond, &a, &b);
    assert_eq!(w.shape(), &[2, 3]);
    assert_eq!(
        w.to_vec2::<f64>(),
        vec![vec![1.0, 2.0, 3.0], vec![-1.0, -1.0, -1.0]]
    );
    // int and float branches promote
    let wi = Tensor::where_(
        &Tensor::from_vec(vec![true, false], [2]),
        &Tensor::from_vec(vec![1i64, 2], [2]),
        &Tensor::from_vec(vec![0.5f32, 0.5], [2]),
    );
    assert_eq!(wi.dtype(), DType::F32);
    assert_eq!(f64s(&wi), vec![1.0, 0.5]);
    let x = Tensor::from_vec(vec![1i64, -2, 3, -4], [4]);
    let m = x.lt_scalar(0.0);
    let filled = x.masked_fill(&m, 0.0);
    assert_eq!(filled.dtype(), DType::I64);
    assert_eq!(i64s(&filled), vec![1, 0, 3, 0]);
    let sq = arange(9).reshape([3, 3]).affine(1.0, 1.0);
    assert_eq!(
        sq.tril(0).to_vec2::<f64>(),
        vec![
            vec![1.0, 0.0, 0.0],
            vec![4.0, 5.0, 0.0],
            vec![7.0, 8.0, 9.0]
        ]
    );
    assert_eq!(
        sq.triu(1).to_vec2::<f64>(),
        vec![
            vec![0.0, 2.0, 3.0],
            vec![0.0, 0.0, 6.0],
            vec![0.0, 0.0, 0.0]
        ]
    );
    assert_eq!(
        sq.tril(-1).to_vec2::<f64>(),
        vec![
            vec![0.0, 0.0, 0.0],
            vec![4.0, 0.0, 0.0],
            vec![7.0, 8.0, 0.0]
        ]
    );
    let rect = Tensor::ones([2, 2, 3], DType::I64).triu(0);
    assert_eq!(i64s(&rect.i(1)), vec![1, 1, 1, 0, 1, 1]);
}

// ---------------------------------------------------------------------------------------------
// elementwise

#[test]
fn unary_values_match_std() {
    let v = [-2.0, -0.5, 0.25, 1.0, 3.0];
    let x = Tensor::from_vec(v.to_vec(), [5]);
    type F = fn(f64) -> f64;
    let cases: Vec<(&str, Tensor, F)> = vec![
        ("exp", x.exp(), f64::exp),
        ("sin", x.sin(), f64::sin),
        ("cos", x.cos(), f64::cos),
        ("tanh", x.tanh(), f64::tanh),
        ("sigmoid", x.sigmoid(), |a| 1.0 / (1.0 + (-a).exp())),
        ("relu", x.relu(), |a| a.max(0.0)),
        ("abs", x.abs(), f64::abs),
        ("sign", x.sign(), f64::signum),
        ("square", x.square(), |a| a * a),
        ("pow 3", x.pow_scalar(3.0), |a| a * a * a),
        ("affine", x.affine(2.0, -1.0), |a| 2.0 * a - 1.0),
        ("clamp", x.clamp(-1.0, 1.0), |a| a.clamp(-1.0, 1.0)),
        ("clamp_min", x.clamp_min(0.0), |a| a.max(0.0)),
        ("clamp_max", x.clamp_max(0.0), |a| a.min(0.0)),
        ("silu", x.silu(), |a| a / (1.0 + (-a).exp())),
        ("softplus", x.softplus(), |a| (1.0 + a.exp()).ln()),
        ("neg", x.neg(), |a| -a),
    ];
    for (name, got, f) in cases {
        assert_close_named(name, &f64s(&got), &v.map(f), 1e-14);
    }
    let p = Tensor::from_vec(vec![0.25, 1.0, 4.0], [3]);
    assert_close(&f64s(&p.log()), &[0.25f64.ln(), 0.0, 4f64.ln()], 1e-15);
    assert_close(&f64s(&p.sqrt()), &[0.5, 1.0, 2.0], 1e-15);
    assert_close(&f64s(&p.rsqrt()), &[2.0, 1.0, 0.5], 1e-15);
    assert_close(&f64s(&p.recip()), &[4.0, 1.0, 0.25], 1e-15);
    assert_close(&f64s(&p.pow_scalar(1.5)), &[0.125, 1.0, 8.0], 1e-15);
    // erf and gelu against tabulated values
    let e = Tensor::from_vec(vec![0.5, 1.0, -2.0], [3]);
    assert_close(
        &f64s(&e.erf()),
        &[0.5204998778130465, 0.8427007929497149, -0.9953222650189527],
        1e-12,
    );
    let g = Tensor::from_vec(vec![1.0, -1.0, 0.0], [3]);
    assert_close(
        &f64s(&g.gelu()),
        &[0.8413447460685429, -0.15865525393145707, 0.0],
        1e-12,
    );
    assert_close(
        &f64s(&g.gelu_tanh()),
        &[0.8411919906082768, -0.15880800939172324, 0.0],
        1e-12,
    );
    // sign of zero is zero; softplus is stable for large |x|
    assert_eq!(f64s(&Tensor::zeros([1], DType::F64).sign()), vec![0.0]);
    let big = Tensor::from_vec(vec![800.0, -800.0], [2]);
    assert_eq!(f64s(&big.softplus()), vec![800.0, 0.0]);
    assert_eq!(f64s(&big.sigmoid()), vec![1.0, 0.0]);
    // f32 and half precision compute close to f64
    for dtype in [DType::F32, DType::F16, DType::BF16] {
        let xh = x.to_dtype(dtype);
        let tol = if dtype == DType::F32 { 1e-6 } else { 1e-2 };
        assert_eq!(xh.exp().dtype(), dtype);
        assert_close(&f64s(&xh.exp()), &v.map(f64::exp), tol);
        assert_close(&f64s(&xh.tanh()), &v.map(f64::tanh), tol);
        assert_close(&f64s(&xh.erf()), &f64s(&x.erf()), tol);
    }
}

#[test]
fn scalar_division_is_true_division() {
    // x / v must round like IEEE division, not like x · (1/v).
    let x = Tensor::from_vec(vec![6.0f64, 7.0, 1.0, 0.3], [4]);
    assert_eq!(
        f64s(&(&x / 10.0)),
        vec![6.0 / 10.0, 7.0 / 10.0, 1.0 / 10.0, 0.3 / 10.0]
    );
    assert_eq!(
        f64s(&x.div_scalar(3.0)),
        vec![2.0, 7.0 / 3.0, 1.0 / 3.0, 0.3 / 3.0]
    );
    assert_eq!(
        f64s(&(3.0 / &x)),
        vec![3.0 / 6.0, 3.0 / 7.0, 3.0, 3.0 / 0.3]
    );
    assert_eq!(f64s(&(&x / 0.25)), vec![24.0, 28.0, 4.0, 0.3 / 0.25]);
    let y = Tensor::from_vec(vec![7.0f32, 255.0], [2]);
    assert_eq!((&y / 255.0).to_vec::<f32>(), vec![7.0f32 / 255.0, 1.0]);
    let z = f64s(&(&x / 0.0));
    assert!(z.iter().all(|v| v.is_infinite()));
    // mean divides by the count: mean of (0, 7, 0, …) over 10 is exactly 0.7
    let mut v = vec![0.0f64; 10];
    v[1] = 7.0;
    assert_eq!(Tensor::from_vec(v, [10]).mean_all().item::<f64>(), 0.7);
    // var of [0, 0.7] (biased): 0.1225 = 0.245 / 2
    let w = Tensor::from_vec(vec![0.0f64, 0.7], [2]);
    assert_eq!(
        w.var_all(false).item::<f64>(),
        (0.35f64 * 0.35 + 0.35 * 0.35) / 2.0
    );
}

#[test]
fn nan_propagates_through_relu_and_clamp() {
    let x = Tensor::from_vec(vec![f32::NAN, -1.0, 2.0], [3]);
    let r = x.relu().to_vec::<f32>();
    assert!(r[0].is_nan(), "relu(nan) must stay nan, got {}", r[0]);
    assert_eq!(&r[1..], &[0.0, 2.0]);
    assert!(x.clamp(0.0, 1.0).to_vec::<f32>()[0].is_nan());
    assert!(x.to_dtype(DType::BF16).relu().to_vec::<f32>()[0].is_nan());
}

#[test]
fn large_where_and_relu_match_elementwise_references() {
    // Sizes over two parallel chunks with a ragged tail: every vector loop, its remainder and
    // the split across threads. Masks are random, so a kernel that branched per element or
    // picked the wrong branch shows.
    let _rng = global_rng();
    manual_seed(7);
    let n = 2 * 65536 + 13;
    let x = Tensor::randn([n], DType::F32);
    let y = Tensor::randn([n], DType::F32);
    let c = Tensor::randn([n], DType::F32).gt_scalar(0.0);
    let (xs, ys, cs) = (x.to_vec::<f32>(), y.to_vec::<f32>(), c.to_vec::<bool>());
    let pick = |a: &dyn Fn(usize) -> f32, b: &dyn Fn(usize) -> f32| -> Vec<f32> {
        (0..n).map(|i| if cs[i] { a(i) } else { b(i) }).collect()
    };
    let s = Tensor::scalar(-2.5, DType::F32);
    let cases = [
        (Tensor::where_(&c, &x, &y), pick(&|i| xs[i], &|i| ys[i])),
        (Tensor::where_(&c, &x, &s), pick(&|i| xs[i], &|_| -2.5)),
        (Tensor::where_(&c, &s, &y), pick(&|_| -2.5, &|i| ys[i])),
        (
            Tensor::where_(&c, &s, &Tensor::scalar(1.0, DType::F32)),
            pick(&|_| -2.5, &|_| 1.0),
        ),
    ];
    for (k, (got, want)) in cases.iter().enumerate() {
        assert_eq!(got.to_vec::<f32>(), *want, "where case {k}");
    }
    let mut with_nan = xs.clone();
    with_nan[n - 1] = f32::NAN;
    with_nan[5] = -0.0;
    let r = Tensor::from_vec(with_nan.clone(), [n])
        .relu()
        .to_vec::<f32>();
    for (i, (&g, &v)) in r.iter().zip(&with_nan).enumerate() {
        let want = if v <= 0.0 { 0.0 } else { v };
        assert!(
            g.to_bits() == want.to_bits() || (g.is_nan() && v.is_nan()),
            "relu element {i}: got {g}, want {want}"
        );
    }
}

#[test]
fn integer_elementwise() {
    let x = Tensor::from_vec(vec![-3i64, 0, 5], [3]);
    assert_eq!(x.relu().dtype(), DType::I64);
    assert_eq!(i64s(&x.relu()), vec![0, 0, 5]);
    assert_eq!(i64s(&x.abs()), vec![3, 0, 5]);
    assert_eq!(i64s(&x.sign()), vec![-1, 0, 1]);
    assert_eq!(i64s(&x.clamp(-1.0, 2.0)), vec![-1, 0, 2]);
    assert_eq!(x.affine(2.0, 1.0).dtype(), DType::I64);
    assert_eq!(i64s(&x.affine(2.0, 1.0)), vec![-5, 1, 11]);
    assert_eq!(x.affine(0.5, 0.0).dtype(), DType::F32);
    assert_eq!(f64s(&x.affine(0.5, 0.0)), vec![-1.5, 0.0, 2.5]);
    assert_eq!(f64s(&x.exp()), f64s(&x.to_dtype(DType::F32).exp()));
    let u = Tensor::from_vec(vec![200u8, 100], [2]);
    assert_eq!((&u + &u).to_vec::<u8>(), vec![144, 200]); // wraps like PyTorch
    let i = Tensor::from_vec(vec![7i32, -7], [2]);
    assert_eq!(f64s(&(&i / 2.0)), vec![3.5, -3.5]);
    assert_eq!(
        i.maximum(&Tensor::scalar(0.0, DType::I32)).to_vec::<i32>(),
        vec![7, 0]
    );
    assert_eq!(
        i.minimum(&Tensor::scalar(0.0, DType::I32)).to_vec::<i32>(),
        vec![0, -7]
    );
    assert_eq!(
        f64s(&x.pow(&Tensor::scalar(2.0, DType::I64))),
        vec![9.0, 0.0, 25.0]
    );
}

#[test]
fn comparisons_and_logical_ops() {
    let a = Tensor::from_vec(vec![1.0, 2.0, 3.0], [3]);
    let b = Tensor::from_vec(vec![3.0, 2.0, 1.0], [3]);
    let bools = |t: Tensor| {
        assert_eq!(t.dtype(), DType::Bool);
        t.to_vec::<bool>()
    };
    assert_eq!(bools(a.eq(&b)), vec![false, true, false]);
    assert_eq!(bools(a.ne(&b)), vec![true, false, true]);
    assert_eq!(bools(a.lt(&b)), vec![true, false, false]);
    assert_eq!(bools(a.le(&b)), vec![true, true, false]);
    assert_eq!(bools(a.gt(&b)), vec![false, false, true]);
    assert_eq!(bools(a.ge(&b)), vec![false, true, true]);
    assert_eq!(bools(a.gt_scalar(1.5)), vec![false, true, true]);
    assert_eq!(bools(a.eq_scalar(2.0)), vec![false, true, false]);
    assert_eq!(bools(a.le_scalar(2.0)), vec![true, true, false]);
    assert_eq!(bools(a.ne_scalar(3.0)), vec![true, true, false]);
    // broadcasting comparison
    let m = a.unsqueeze(1).lt(&b);
    assert_eq!(m.shape(), &[3, 3]);
    assert_eq!(m.to_vec2::<bool>()[0], vec![true, true, false]);
    // mixed dtypes compare by value after promotion
    let i = Tensor::from_vec(vec![1i64, 2, 3], [3]);
    let f = Tensor::from_vec(vec![1.5f32, 2.0, 2.5], [3]);
    assert_eq!(bools(i.lt(&f)), vec![true, false, false]);
    assert_eq!(bools(i.eq(&f)), vec![false, true, false]);
    assert_eq!(bools(i.gt_scalar(1.5)), vec![false, true, true]);
    // scalars outside the integer dtype's range must compare by value, not saturate
    let u = Tensor::from_vec(vec![0u8, 128, 255], [3]);
    assert_eq!(bools(u.gt_scalar(-1.0)), vec![true, true, true]);
    assert_eq!(bools(u.eq_scalar(256.0)), vec![false, false, false]);
    assert_eq!(bools(u.lt_scalar(300.0)), vec![true, true, true]);
    assert_eq!(bools(u.ge_scalar(-0.0)), vec![true, true, true]);
    let i32s = Tensor::from_vec(vec![i32::MAX, 0], [2]);
    assert_eq!(bools(i32s.eq_scalar(3e9)), vec![false, false]);
    assert_eq!(bools(i32s.lt_scalar(3e9)), vec![true, true]);
    // NaN compares false except !=
    let n = Tensor::from_vec(vec![f64::NAN], [1]);
    assert_eq!(bools(n.eq(&n)), vec![false]);
    assert_eq!(bools(n.ne(&n)), vec![true]);
    // logical ops work on bools and on truthiness of numbers
    let p = Tensor::from_vec(vec![true, true, false, false], [4]);
    let q = Tensor::from_vec(vec![true, false, true, false], [4]);
    assert_eq!(bools(p.logical_and(&q)), vec![true, false, false, false]);
    assert_eq!(bools(p.logical_or(&q)), vec![true, true, true, false]);
    assert_eq!(bools(p.logical_xor(&q)), vec![false, true, true, false]);
    assert_eq!(bools(p.logical_not()), vec![false, false, true, true]);
    let num = Tensor::from_vec(vec![0.0, 2.0, -1.0, 0.0], [4]);
    assert_eq!(bools(num.logical_not()), vec![true, false, false, true]);
    assert_eq!(bools(num.logical_and(&q)), vec![false, false, true, false]);
}

#[test]
fn broadcasting_rules() {
    // [2, 1, 3] + [4, 1] → [2, 4, 3], checked against explicit loops
    let a = arange(6).reshape([2, 1, 3]);
    let b = arange(4).reshape([4, 1]).mul_scalar(10.0);
    let c = &a + &b;
    assert_eq!(c.shape(), &[2, 4, 3]);
    let (av, bv) = (f64s(&a), f64s(&b));
    let mut want = vec![];
    for i in 0..2 {
        for bj in &bv {
            for k in 0..3 {
                want.push(av[i * 3 + k] + bj);
            }
        }
    }
    assert_eq!(f64s(&c), want);
    // 0-d with anything
    let s = Tensor::scalar(2.0, DType::F64);
    assert_eq!((&s * &a).shape(), &[2, 1, 3]);
    assert_eq!((&s * &s).shape(), &[] as &[usize]);
    // empty dims broadcast too
    let e = Tensor::zeros([0, 3], DType::F32);
    assert_eq!((&e + &Tensor::ones([3], DType::F32)).shape(), &[0, 3]);
    // trailing-dim alignment with views on both sides
    let m = arange(12).reshape([3, 4]);
    let col = arange(6).reshape([3, 2]).narrow(1, 1, 1); // [3, 1] view: 1, 3, 5
    assert_eq!(
        (&m.t() - &col.t()).to_vec2::<f64>()[0],
        vec![-1.0, 1.0, 3.0]
    );
}

#[test]
fn operator_overloading() {
    let a = Tensor::from_vec(vec![1.0, 2.0, 4.0], [3]);
    let b = Tensor::from_vec(vec![2.0, 2.0, 2.0], [3]);
    assert_eq!(f64s(&(&a + &b)), vec![3.0, 4.0, 6.0]);
    assert_eq!(f64s(&(&a - &b)), vec![-1.0, 0.0, 2.0]);
    assert_eq!(f64s(&(&a * &b)), vec![2.0, 4.0, 8.0]);
    assert_eq!(f64s(&(&a / &b)), vec![0.5, 1.0, 2.0]);
    assert_eq!(f64s(&(a.clone() + b.clone())), vec![3.0, 4.0, 6.0]);
    assert_eq!(f64s(&(a.clone() - &b)), vec![-1.0, 0.0, 2.0]);
    assert_eq!(f64s(&(&a * b.clone())), vec![2.0, 4.0, 8.0]);
    assert_eq!(f64s(&(&a * 2.0)), vec![2.0, 4.0, 8.0]);
    assert_eq!(f64s(&(a.clone() * 2.0)), vec![2.0, 4.0, 8.0]);
    assert_eq!(f64s(&(2.0 * &a)), vec![2.0, 4.0, 8.0]);
    assert_eq!(f64s(&(&a + 1.0)), vec![2.0, 3.0, 5.0]);
    assert_eq!(f64s(&(1.0 + &a)), vec![2.0, 3.0, 5.0]);
    assert_eq!(f64s(&(&a - 1.0)), vec![0.0, 1.0, 3.0]);
    assert_eq!(f64s(&(2.0 - &a)), vec![1.0, 0.0, -2.0]);
    assert_eq!(f64s(&(&a / 2.0)), vec![0.5, 1.0, 2.0]);
    assert_eq!(f64s(&(2.0 / &a)), vec![2.0, 1.0, 0.5]);
    assert_eq!(f64s(&(-&a)), vec![-1.0, -2.0, -4.0]);
    assert_eq!(f64s(&(-a.clone())), vec![-1.0, -2.0, -4.0]);
    // integer tensors keep their dtype for whole scalars, promote otherwise
    let i = Tensor::from_vec(vec![1i64, 2, 3], [3]);
    assert_eq!((&i * 2.0).dtype(), DType::I64);
    assert_eq!(i64s(&(&i * 2.0)), vec![2, 4, 6]);
    assert_eq!(i64s(&(10.0 - &i)), vec![9, 8, 7]);
    assert_eq!((&i + 0.5).dtype(), DType::F32);
    assert_eq!(f64s(&(&i + 0.5)), vec![1.5, 2.5, 3.5]);
    assert_eq!(f64s(&(&i / 2.0)), vec![0.5, 1.0, 1.5]);
    assert_eq!(f64s(&(3.0 / &i)), vec![3.0, 1.5, 1.0]);
    assert_eq!(i64s(&(-&i)), vec![-1, -2, -3]);
}

#[test]
fn in_place_ops() {
    let x = Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], [2, 2]);
    x.add_(&Tensor::from_vec(vec![10.0, 20.0], [2]));
    assert_eq!(f64s(&x), vec![11.0, 22.0, 13.0, 24.0]);
    x.sub_(&Tensor::scalar(1.0, DType::F64));
    x.mul_(&Tensor::from_vec(vec![1.0, 0.5], [2]));
    assert_eq!(f64s(&x), vec![10.0, 10.5, 12.0, 11.5]);
    x.div_(&Tensor::scalar(2.0, DType::F64));
    x.affine_(2.0, 1.0);
    assert_eq!(f64s(&x), vec![11.0, 11.5, 13.0, 12.5]);
    x.clamp_(11.5, 12.5);
    assert_eq!(f64s(&x), vec![11.5, 11.5, 12.5, 12.5]);
    x.add_scaled_(&Tensor::ones([2, 2], DType::F64), -0.5);
    x.add_scalar_(1.0);
    x.mul_scalar_(2.0);
    assert_eq!(f64s(&x), vec![24.0, 24.0, 26.0, 26.0]);
    x.t().narrow(0, 1, 1).zero_();
    assert_eq!(f64s(&x), vec![24.0, 0.0, 26.0, 0.0]);
    x.fill_(3.0);
    assert_eq!(f64s(&x), vec![3.0; 4]);
    // copy_ casts and broadcasts
    let y = Tensor::zeros([2, 3], DType::F32);
    y.copy_(&Tensor::from_vec(vec![1i64, 2, 3], [3]));
    assert_eq!(y.to_vec::<f32>(), vec![1.0, 2.0, 3.0, 1.0, 2.0, 3.0]);
    // aliasing source and destination: read fully before writing
    let z = arange(4);
    z.narrow(0, 1, 3).copy_(&z.narrow(0, 0, 3));
    assert_eq!(f64s(&z), vec![0.0, 0.0, 1.0, 2.0]);
    let w = arange(4);
    w.add_(&w.flip_like_reverse());
    assert_eq!(f64s(&w), vec![3.0, 3.0, 3.0, 3.0]);
    // integer in place
    let k = Tensor::from_vec(vec![1i32, 2], [2]);
    k.mul_scalar_(3.0);
    assert_eq!(k.to_vec::<i32>(), vec![3, 6]);
}

trait FlipLike {
    fn flip_like_reverse(&self) -> Tensor;
}
impl FlipLike for Tensor {
    /// Reverses a 1-D tensor with index_select (a copy).
    fn flip_like_reverse(&self) -> Tensor {
        let n = self.shape()[0] as i64;
        self.index_select(
            0,
            &Tensor::from_vec((0..n).rev().collect::<Vec<_>>(), [n as usize]),
        )
    }
}

// ---------------------------------------------------------------------------------------------
// reductions

#[test]
fn float_reductions() {
    let x = Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], [2, 3]);
    assert_eq!(f64s(&x.sum([0], false)), vec![5.0, 7.0, 9.0]);
    assert_eq!(f64s(&x.sum([1], false)), vec![6.0, 15.0]);
    assert_eq!(x.sum([1], true).shape(), &[2, 1]);
    assert_eq!(x.sum([0, 1], true).shape(), &[1, 1]);
    assert_eq!(x.sum_all().shape(), &[] as &[usize]);
    assert_eq!(x.sum_all().item::<f64>(), 21.0);
    assert_eq!(x.sum((), false).item::<f64>(), 21.0);
    assert_eq!(f64s(&x.mean([-1], false)), vec![2.0, 5.0]);
    assert_eq!(x.mean_all().item::<f64>(), 3.5);
    assert_eq!(f64s(&x.prod([1], false)), vec![6.0, 120.0]);
    assert_eq!(x.prod((), false).item::<f64>(), 720.0);
    assert_eq!(f64s(&x.amax([0], false)), vec![4.0, 5.0, 6.0]);
    assert_eq!(f64s(&x.amin([1], true)), vec![1.0, 4.0]);
    assert_eq!(x.max_all().item::<f64>(), 6.0);
    assert_eq!(x.min_all().item::<f64>(), 1.0);
    // var/std of [1, 2, 3, 4]: unbiased 5/3, biased 5/4
    let v = Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], [4]);
    assert_close(&f64s(&v.var([0], true, false)), &[5.0 / 3.0], 1e-15);
    assert_close(&f64s(&v.var([0], false, false)), &[1.25], 1e-15);
    assert_close(
        &f64s(&v.std([0], true, false)),
        &[(5.0f64 / 3.0).sqrt()],
        1e-15,
    );
    assert_close(&f64s(&v.std_all(false)), &[1.25f64.sqrt()], 1e-15);
    assert_close(&f64s(&v.var_all(true)), &[5.0 / 3.0], 1e-15);
    // var over several dims
    assert_close(&f64s(&x.var([0, 1], true, false)), &[3.5], 1e-15);
    assert_close(&f64s(&x.var([0], false, false)), &[2.25, 2.25, 2.25], 1e-15);
    // logsumexp, including a huge value that would overflow a naive exp
    let l = Tensor::from_vec(vec![0.0, 0.0, 1000.0, 1000.0], [2, 2]);
    assert_close(
        &f64s(&l.logsumexp([1], false)),
        &[2f64.ln(), 1000.0 + 2f64.ln()],
        1e-15,
    );
    let ninf = Tensor::full([2], f64::NEG_INFINITY, DType::F64);
    assert_eq!(f64s(&ninf.logsumexp([0], false)), vec![f64::NEG_INFINITY]);
    assert_eq!(l.logsumexp((), true).shape(), &[1, 1]);
    // reductions of non-contiguous views
    let t = x.t();
    assert_eq!(f64s(&t.sum([1], false)), vec![5.0, 7.0, 9.0]);
    assert_eq!(f64s(&t.amax([0], false)), vec![3.0, 6.0]);
    let cube = arange(24).reshape([2, 3, 4]);
    let want: Vec<f64> = (0..3)
        .map(|j| {
            let mut s = 0.0;
            for i in 0..2 {
                for k in 0..4 {
                    s += (i * 12 + j * 4 + k) as f64;
                }
            }
            s
        })
        .collect();
    assert_eq!(f64s(&cube.sum([0, 2], false)), want);
    assert_eq!(f64s(&cube.permute([2, 1, 0]).sum([0, 2], false)), want);
    assert_eq!(f64s(&cube.sum([0, 1], false)), vec![60.0, 66.0, 72.0, 78.0]);
    // NaN propagates through max
    let n = Tensor::from_vec(vec![1.0, f64::NAN, 3.0], [3]);
    assert!(n.max_all().item::<f64>().is_nan());
    assert!(n.min_all().item::<f64>().is_nan());
    // half-precision sums accumulate in f32
    let h = Tensor::ones([4096], DType::F16);
    assert_eq!(h.sum_all().item::<f64>(), 4096.0);
    assert_eq!(h.sum_all().dtype(), DType::F16);
}

#[test]
fn integer_reductions() {
    let x = Tensor::from_vec(vec![1i32, 2, 3, 4, 5, 6], [2, 3]);
    let s = x.sum([1], false);
    assert_eq!(s.dtype(), DType::I64);
    assert_eq!(i64s(&s), vec![6, 15]);
    assert_eq!(x.prod((), false).dtype(), DType::I64);
    assert_eq!(x.prod((), false).item::<i64>(), 720);
    assert_eq!(x.amax([0], false).dtype(), DType::I32);
    assert_eq!(x.amax([0], false).to_vec::<i32>(), vec![4, 5, 6]);
    let u = Tensor::from_vec(vec![200u8, 100, 50], [3]);
    assert_eq!(u.sum_all().dtype(), DType::I64);
    assert_eq!(u.sum_all().item::<i64>(), 350); // no u8 overflow
    let b = Tensor::from_vec(vec![true, false, true, true], [4]);
    assert_eq!(b.sum_all().item::<i64>(), 3);
    assert_eq!(b.amax((), false).dtype(), DType::Bool);
}

#[test]
fn argmax_argmin_and_max_dim() {
    let x = Tensor::from_vec(vec![3.0, 7.0, 7.0, 1.0, -2.0, 5.0, 0.0, -2.0], [2, 4]);
    let am = x.argmax(1, false);
    assert_eq!(am.dtype(), DType::I64);
    assert_eq!(i64s(&am), vec![1, 1]); // first of the tied maxima
    assert_eq!(i64s(&x.argmin(1, false)), vec![3, 0]);
    assert_eq!(i64s(&x.argmax(0, false)), vec![0, 0, 0, 0]);
    assert_eq!(x.argmax(1, true).shape(), &[2, 1]);
    assert_eq!(x.argmax_all().item::<i64>(), 1);
    let (v, i) = x.max_dim(-1, false);
    assert_eq!(f64s(&v), vec![7.0, 5.0]);
    assert_eq!(i64s(&i), vec![1, 1]);
    let (v, i) = x.min_dim(0, true);
    assert_eq!(v.shape(), &[1, 4]);
    assert_eq!(f64s(&v), vec![-2.0, 5.0, 0.0, -2.0]);
    assert_eq!(i64s(&i), vec![1, 1, 1, 1]);
    // on a transposed view and an int tensor
    assert_eq!(i64s(&x.t().argmax(0, false)), vec![1, 1]);
    let k = Tensor::from_vec(vec![5i64, 9, 2], [3]);
    assert_eq!(k.argmax(0, false).item::<i64>(), 1);
    assert_eq!(k.argmin(0, false).item::<i64>(), 2);
    // NaN wins argmax
    let n = Tensor::from_vec(vec![1.0, f64::NAN, 3.0], [3]);
    assert_eq!(n.argmax(0, false).item::<i64>(), 1);
}

// ---------------------------------------------------------------------------------------------
// printing

#[test]
fn display_matches_pytorch_style() {
    let m = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0], [2, 2]);
    assert_eq!(
        m.to_string(),
        "tensor([[1., 2.],\n        [3., 4.]], dtype=f32)"
    );
    let f = Tensor::from_vec(vec![0.1f64, 2.0, -3.5], [3]);
    assert_eq!(
        f.to_string(),
        "tensor([ 0.1000,  2.0000, -3.5000], dtype=f64)"
    );
    let i = Tensor::from_vec(vec![1i64, -20, 300], [3]);
    assert_eq!(i.to_string(), "tensor([  1, -20, 300], dtype=i64)");
    // large integers print exactly (not through f64)
    let big = Tensor::from_vec(vec![9_007_199_254_740_993i64, i64::MIN], [2]);
    assert_eq!(
        big.to_string(),
        "tensor([    9007199254740993, -9223372036854775808], dtype=i64)"
    );
    let b = Tensor::from_vec(vec![true, false], [2]);
    assert_eq!(b.to_string(), "tensor([ true, false], dtype=bool)");
    assert_eq!(
        Tensor::scalar(3.5, DType::F64).to_string(),
        "tensor(3.5000, dtype=f64)"
    );
    assert_eq!(
        Tensor::scalar(7.0, DType::I32).to_string(),
        "tensor(7, dtype=i32)"
    );
    let c = Tensor::from_vec((1..=8).collect::<Vec<i64>>(), [2, 2, 2]);
    assert_eq!(
        c.to_string(),
        "tensor([[[1, 2],\n         [3, 4]],\n\n        [[5, 6],\n         [7, 8]]], dtype=i64)"
    );
    let s = Tensor::from_vec(vec![1e-5f64, 1.0, 250.0], [3]);
    assert_eq!(
        s.to_string(),
        "tensor([1.0000e-05, 1.0000e+00, 2.5000e+02], dtype=f64)"
    );
    let nf = Tensor::from_vec(vec![f32::NAN, f32::INFINITY, 1.5], [3]);
    assert_eq!(
        nf.to_string(),
        "tensor([   nan,    inf, 1.5000], dtype=f32)"
    );
    assert_eq!(
        Tensor::zeros([0], DType::F32).to_string(),
        "tensor([], dtype=f32)"
    );
    // views print in logical order
    assert_eq!(
        m.t().to_string(),
        "tensor([[1., 3.],\n        [2., 4.]], dtype=f32)"
    );
    // autograd annotations
    let x = Tensor::from_vec(vec![1.0f64], [1]).requires_grad_(true);
    assert_eq!(x.to_string(), "tensor([1.], dtype=f64, requires_grad=true)");
    assert!(x
        .mul_scalar(2.0)
        .to_string()
        .ends_with(", grad_fn=<affine>)"));
}

#[test]
fn display_elides_large_tensors() {
    let x = Tensor::arange(0.0, 2000.0, 1.0, DType::I64);
    let s = x.to_string();
    assert!(s.starts_with("tensor([   0,    1,    2,"), "{s}");
    assert!(s.ends_with("1997, 1998, 1999], dtype=i64)"), "{s}");
    assert!(s.contains("..."), "{s}");
    assert!(s.len() < 100, "{s}");
    let m = Tensor::zeros([40, 30], DType::F32);
    let s = m.to_string();
    assert_eq!(s.lines().count(), 7, "{s}"); // 3 rows, "...", 3 rows
    assert!(s.lines().nth(3).unwrap().trim() == "...,", "{s}");
    assert!(
        s.lines()
            .next()
            .unwrap()
            .contains("0., 0., 0., ..., 0., 0., 0."),
        "{s}"
    );
    // exactly at the threshold: no elision
    let t = Tensor::zeros([1000], DType::U8);
    assert!(!t.to_string().contains("..."));
}

#[test]
fn debug_shows_metadata() {
    let x = Tensor::zeros([2, 3], DType::F32);
    assert_eq!(
        format!("{x:?}"),
        "Tensor[shape=[2, 3], dtype=f32, device=cpu]"
    );
    let y = Tensor::zeros([4], DType::BF16).requires_grad_(true);
    assert_eq!(
        format!("{y:?}"),
        "Tensor[shape=[4], dtype=bf16, device=cpu, requires_grad]"
    );
}

// ---------------------------------------------------------------------------------------------
// large tensors and matmul

#[test]
fn large_elementwise_and_reductions() {
    let n = 100_003;
    let mut g = Generator::new(42);
    let a = Tensor::randn_with([n], DType::F32, &mut g);
    let b = Tensor::randn_with([n], DType::F32, &mut g);
    let (av, bv) = (a.to_vec::<f32>(), b.to_vec::<f32>());
    let sum = (&a + &b).to_vec::<f32>();
    let prod = (&a * &b.exp()).to_vec::<f32>();
    for k in 0..n {
        assert_eq!(sum[k], av[k] + bv[k]);
        assert!((prod[k] - av[k] * bv[k].exp()).abs() <= 1e-5 * (1.0 + prod[k].abs()));
    }
    // broadcast and strided operands on a big tensor
    let m = a.narrow(0, 0, 300 * 300).reshape([300, 300]);
    let mt = &m.t() + &Tensor::from_vec(vec![1.0f32; 300], [300, 1]);
    let mv = mt.to_vec::<f32>();
    for i in 0..300 {
        for j in 0..300 {
            assert_eq!(mv[i * 300 + j], av[j * 300 + i] + 1.0);
        }
    }
    let total: f64 = av.iter().map(|&v| v as f64).sum();
    let got = a.to_dtype(DType::F64).sum_all().item::<f64>();
    assert!((got - total).abs() < 1e-9, "{got} vs {total}");
    let rows = m.sum([1], false).to_vec::<f32>();
    for (i, r) in rows.iter().enumerate() {
        let want: f32 = av[i * 300..(i + 1) * 300].iter().sum();
        assert!((r - want).abs() < 1e-3, "row {i}");
    }
    let mx = av.iter().cloned().fold(f32::MIN, f32::max);
    assert_eq!(a.max_all().item::<f32>(), mx);
}

#[test]
fn long_float_sums_stay_accurate() {
    // A running f32 sum of 0.1 (f32) a million times drifts by about 1%; the exact sum of the
    // stored value 0.100000001490116… is 100000.0015.
    let x = Tensor::full([1_000_000], 0.1, DType::F32);
    let s = x.sum_all().item::<f64>();
    assert!((s - 100_000.0).abs() < 0.05, "sum {s}");
    let m = x.mean_all().item::<f64>();
    assert!((m - 0.1).abs() < 1e-7, "mean {m}");
    // per-row sums of a wide matrix and column sums of a tall one
    let rows = Tensor::full([2, 500_000], 0.1, DType::F32).sum([1], false);
    assert_close(&f64s(&rows), &[50_000.0, 50_000.0], 1e-6);
    let cols = Tensor::full([500_000, 2], 0.1, DType::F32).sum([0], false);
    assert_close(&f64s(&cols), &[50_000.0, 50_000.0], 1e-6);
    // half precision accumulates in a wider type too
    let h = Tensor::full([100_000], 0.1, DType::BF16)
        .sum_all()
        .item::<f64>();
    assert!((h - 10_000.0).abs() < 100.0, "bf16 sum {h}");
}

/// Naive reference `a @ b` in f64 for [m, k] and [k, n] row-major data.
fn naive_matmul(a: &[f64], b: &[f64], m: usize, k: usize, n: usize) -> Vec<f64> {
    let mut out = vec![0.0; m * n];
    for i in 0..m {
        for j in 0..n {
            let mut acc = 0.0;
            for p in 0..k {
                acc += a[i * k + p] * b[p * n + j];
            }
            out[i * n + j] = acc;
        }
    }
    out
}

/// Random [rows, cols] matrix of small integers (exact in every dtype, products exact in f16),
/// optionally built transposed so the operand is a non-contiguous view.
fn operand(rows: usize, cols: usize, transposed: bool, dtype: DType, g: &mut Generator) -> Tensor {
    let shape = if transposed {
        [cols, rows]
    } else {
        [rows, cols]
    };
    let t = Tensor::randint_with(-4, 5, shape, g).to_dtype(dtype);
    if transposed {
        t.t()
    } else {
        t
    }
}

#[test]
fn matmul_matches_naive_loops() {
    let mut g = Generator::new(5);
    let sizes = [
        (1, 1, 1),
        (2, 3, 4),
        (7, 5, 3),
        (17, 33, 9),
        (16, 16, 16),
        (65, 31, 130),
        (128, 128, 128),
    ];
    for dtype in [
        DType::F32,
        DType::F64,
        DType::F16,
        DType::BF16,
        DType::I64,
        DType::I32,
    ] {
        for &(m, k, n) in &sizes {
            if matches!(dtype, DType::F16 | DType::BF16) && k > 16 {
                continue; // keep sums of small integers exact in half precision
            }
            for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
                let a = operand(m, k, ta, dtype, &mut g);
                let b = operand(k, n, tb, dtype, &mut g);
                let c = a.matmul(&b);
                assert_eq!(c.shape(), &[m, n]);
                assert_eq!(c.dtype(), dtype);
                let want = naive_matmul(&f64s(&a), &f64s(&b), m, k, n);
                assert_eq!(f64s(&c), want, "{dtype} {m}x{k}x{n} transposed {ta} {tb}");
            }
        }
    }
}

#[test]
fn matmul_random_sizes_match_naive_loops() {
    let mut rng = XorShift(0xD1B5_4A32_D192_ED03);
    let mut g = Generator::new(8);
    for _ in 0..40 {
        let (m, k, n) = (1 + rng.below(40), 1 + rng.below(40), 1 + rng.below(40));
        let (ta, tb) = (rng.below(2) == 1, rng.below(2) == 1);
        for dtype in [DType::F64, DType::I64] {
            let a = operand(m, k, ta, dtype, &mut g);
            let b = operand(k, n, tb, dtype, &mut g);
            let want = naive_matmul(&f64s(&a), &f64s(&b), m, k, n);
            assert_eq!(f64s(&a.matmul(&b)), want, "{dtype} {m}x{k}x{n} {ta} {tb}");
        }
    }
}

#[test]
fn matmul_float_accuracy_and_batches() {
    let mut g = Generator::new(6);
    for (m, k, n) in [(3, 700, 5), (64, 200, 48), (130, 70, 129)] {
        let a = Tensor::randn_with([m, k], DType::F64, &mut g);
        let b = Tensor::randn_with([n, k], DType::F64, &mut g).t();
        let want = naive_matmul(&f64s(&a), &f64s(&b), m, k, n);
        assert_close(&f64s(&a.matmul(&b)), &want, 1e-12);
        let a32 = a.to_dtype(DType::F32);
        let b32 = b.to_dtype(DType::F32);
        assert_close(&f64s(&a32.matmul(&b32)), &want, 1e-4 * (k as f64).sqrt());
    }
    // batched with broadcast batch dims: [2, 1, m, k] @ [3, k, n] → [2, 3, m, n]
    let (m, k, n) = (5, 7, 4);
    let a = Tensor::randn_with([2, 1, m, k], DType::F64, &mut g);
    let b = Tensor::randn_with([3, k, n], DType::F64, &mut g);
    let c = a.matmul(&b);
    assert_eq!(c.shape(), &[2, 3, m, n]);
    for i in 0..2 {
        for j in 0..3 {
            let want = naive_matmul(&f64s(&a.i((i, 0))), &f64s(&b.i(j)), m, k, n);
            assert_close(&f64s(&c.i((i, j))), &want, 1e-12);
        }
    }
    // non-contiguous batch dims
    let a = Tensor::randn_with([3, 2, m, k], DType::F64, &mut g).transpose(0, 1);
    let b = Tensor::randn_with([2, 3, n, k], DType::F64, &mut g).transpose(2, 3);
    let c = a.matmul(&b);
    assert_eq!(c.shape(), &[2, 3, m, n]);
    for i in 0..2 {
        for j in 0..3 {
            let want = naive_matmul(&f64s(&a.i((i, j))), &f64s(&b.i((i, j))), m, k, n);
            assert_close(&f64s(&c.i((i, j))), &want, 1e-12);
        }
    }
    // many batches (parallel over the batch), with a transposed operand
    let a = Tensor::randn_with([16, 64, 64], DType::F32, &mut g);
    let b = Tensor::randn_with([16, 64, 64], DType::F32, &mut g).transpose(1, 2);
    let c = a.matmul(&b);
    for i in [0, 7, 15] {
        let want = naive_matmul(&f64s(&a.i(i)), &f64s(&b.i(i)), 64, 64, 64);
        assert_close(&f64s(&c.i(i)), &want, 1e-4);
    }
    // vector forms
    let v = Tensor::from_vec(vec![1.0, 2.0, 3.0], [3]);
    let w = Tensor::from_vec(vec![4.0, 5.0, 6.0], [3]);
    assert_eq!(v.matmul(&w).shape(), &[] as &[usize]);
    assert_eq!(v.matmul(&w).item::<f64>(), 32.0);
    let mtx = arange(6).reshape([3, 2]);
    assert_eq!(f64s(&v.matmul(&mtx)), vec![16.0, 22.0]);
    assert_eq!(f64s(&mtx.t().matmul(&v)), vec![16.0, 22.0]);
    // k = 0 gives zeros, m = 0 gives an empty result
    let z = Tensor::zeros([3, 0], DType::F32).matmul(&Tensor::zeros([0, 2], DType::F32));
    assert_eq!(z.to_vec::<f32>(), vec![0.0; 6]);
    assert_eq!(
        Tensor::zeros([0, 4], DType::F32)
            .matmul(&Tensor::zeros([4, 2], DType::F32))
            .shape(),
        &[0, 2]
    );
}

#[test]
fn unfold_and_fold_values() {
    let x = arange(9).reshape([1, 1, 3, 3]);
    let cols = Tensor::unfold_raw(&x, [2, 2], [1, 1], [0, 0], [1, 1], 0.0);
    assert_eq!(cols.shape(), &[1, 4, 4]);
    assert_eq!(
        cols.i(0).to_vec2::<f64>(),
        vec![
            vec![0.0, 1.0, 3.0, 4.0],
            vec![1.0, 2.0, 4.0, 5.0],
            vec![3.0, 4.0, 6.0, 7.0],
            vec![4.0, 5.0, 7.0, 8.0]
        ]
    );
    // fold sums overlapping windows: fold(unfold(x)) = x · (number of windows covering it)
    let back = Tensor::fold_raw(&cols, [3, 3], [2, 2], [1, 1], [0, 0], [1, 1]);
    let counts = [1.0, 2.0, 1.0, 2.0, 4.0, 2.0, 1.0, 2.0, 1.0];
    let want: Vec<f64> = (0..9).map(|i| i as f64 * counts[i]).collect();
    assert_eq!(f64s(&back), want);
    // padding reads pad_value, stride skips positions
    let p = Tensor::unfold_raw(&x, [2, 2], [2, 2], [1, 1], [1, 1], -1.0);
    assert_eq!(p.shape(), &[1, 4, 4]);
    assert_eq!(
        p.i(0).to_vec2::<f64>()[0],
        vec![-1.0, -1.0, -1.0, 4.0] // top-left taps of windows at (-1,-1), (-1,1), (1,-1), (1,1)
    );
}

// ---------------------------------------------------------------------------------------------
// randomized views against a naive model

/// Tiny deterministic PRNG for choosing view operations (independent of the code under test).
struct XorShift(u64);
impl XorShift {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

/// One logical dim of a naive view of `arange(numel).reshape(BASE)`: index `i` reads original
/// dim `orig` at `start + step * i` (`step` 0 for broadcast dims; `orig` None for new dims).
#[derive(Clone, Copy, Debug)]
struct DimMap {
    orig: Option<usize>,
    start: usize,
    step: usize,
    size: usize,
}

const BASE: [usize; 3] = [3, 4, 5];

fn naive_values(dims: &[DimMap]) -> Vec<f64> {
    let base_strides = [20, 5, 1];
    let n: usize = dims.iter().map(|d| d.size).product();
    let mut out = Vec::with_capacity(n);
    for flat in 0..n {
        let mut rem = flat;
        let mut v = 0;
        for d in dims.iter().rev() {
            let i = rem % d.size;
            rem /= d.size;
            if let Some(o) = d.orig {
                v += (d.start + d.step * i) * base_strides[o];
            }
        }
        out.push(v as f64);
    }
    out
}

#[test]
fn random_view_chains_match_a_naive_model() {
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    for case in 0..300 {
        let base = arange(60).reshape(BASE);
        let mut t = base.clone();
        let mut dims: Vec<DimMap> = (0..3)
            .map(|o| DimMap {
                orig: Some(o),
                start: 0,
                step: 1,
                size: BASE[o],
            })
            .collect();
        let mut ops = vec![];
        for _ in 0..4 {
            match rng.below(4) {
                0 => {
                    // random permutation
                    let r = dims.len();
                    let mut perm: Vec<usize> = (0..r).collect();
                    for i in (1..r).rev() {
                        perm.swap(i, rng.below(i + 1));
                    }
                    t = t.permute(perm.clone());
                    dims = perm.iter().map(|&p| dims[p]).collect();
                    ops.push(format!("permute{perm:?}"));
                }
                1 => {
                    // slice with a step
                    let d = rng.below(dims.len());
                    let size = dims[d].size;
                    let start = rng.below(size);
                    let step = 1 + rng.below(3);
                    let len = 1 + rng.below((size - start).div_ceil(step));
                    t = t.slice(d, start, start + (len - 1) * step + 1, step);
                    dims[d].start += dims[d].step * start;
                    dims[d].step *= step;
                    dims[d].size = len;
                    ops.push(format!("slice({d}, {start}, len {len}, step {step})"));
                }
                2 => {
                    // broadcast a size-1 dim (narrowing to one entry first)
                    let d = rng.below(dims.len());
                    let at = rng.below(dims[d].size);
                    let k = 2 + rng.below(3);
                    t = t.narrow(d, at, 1);
                    let mut shape = t.shape().to_vec();
                    shape[d] = k;
                    t = t.expand(shape);
                    dims[d].start += dims[d].step * at;
                    dims[d].step = 0;
                    dims[d].size = k;
                    ops.push(format!("narrow({d}, {at}, 1).expand(.. {k} ..)"));
                }
                _ => {
                    if dims.len() < 5 {
                        // a new leading broadcast dim
                        let k = 1 + rng.below(3);
                        let mut shape = vec![k];
                        shape.extend_from_slice(t.shape());
                        t = t.expand(shape);
                        dims.insert(
                            0,
                            DimMap {
                                orig: None,
                                start: 0,
                                step: 0,
                                size: k,
                            },
                        );
                        ops.push(format!("expand(lead {k})"));
                    }
                }
            }
        }
        let want = naive_values(&dims);
        let shape: Vec<usize> = dims.iter().map(|d| d.size).collect();
        let ctx = format!("case {case}: {}", ops.join(" . "));
        assert_eq!(t.shape(), shape.as_slice(), "{ctx}");
        assert_eq!(f64s(&t), want, "to_vec: {ctx}");
        assert_eq!(f64s(&t.contiguous()), want, "contiguous: {ctx}");
        assert_eq!(f64s(&t.reshape([want.len()])), want, "reshape: {ctx}");
        assert_eq!(
            f64s(&t.affine(2.0, 1.0)),
            want.iter().map(|v| 2.0 * v + 1.0).collect::<Vec<_>>(),
            "unary: {ctx}"
        );
        let plus = &t + &t.contiguous().mul_scalar(10.0);
        assert_eq!(
            f64s(&plus),
            want.iter().map(|v| 11.0 * v).collect::<Vec<_>>(),
            "binary: {ctx}"
        );
        assert_eq!(f64s(&t.to_dtype(DType::F32)), want, "cast: {ctx}");
        let picked = Tensor::where_(&t.gt_scalar(29.5), &t, &t.neg().contiguous());
        let want_where: Vec<f64> = want
            .iter()
            .map(|&v| if v > 29.5 { v } else { -v })
            .collect();
        assert_eq!(f64s(&picked), want_where, "where: {ctx}");
        assert_eq!(
            t.sum_all().item::<f64>(),
            want.iter().sum::<f64>(),
            "sum: {ctx}"
        );
        let mx = want.iter().cloned().fold(f64::MIN, f64::max);
        assert_eq!(t.max_all().item::<f64>(), mx, "max: {ctx}");
        // reduce over the last dim against the naive values
        let last = *shape.last().unwrap();
        let rows: Vec<f64> = want.chunks(last).map(|c| c.iter().sum()).collect();
        assert_eq!(f64s(&t.sum([-1], false)), rows, "sum(-1): {ctx}");
        // and over the first dim
        let first = shape[0];
        let inner = want.len() / first;
        let cols: Vec<f64> = (0..inner)
            .map(|j| (0..first).map(|i| want[i * inner + j]).sum())
            .collect();
        assert_eq!(f64s(&t.sum([0], false)), cols, "sum(0): {ctx}");
        // writing through a non-broadcast view lands in the right base elements
        if dims.iter().all(|d| d.step != 0) {
            t.fill_(-1.0);
            let got = f64s(&base);
            for (i, g) in got.iter().enumerate() {
                let hit = want.contains(&(i as f64));
                assert_eq!(*g == -1.0, hit, "write-through at {i}: {ctx}");
            }
        }
    }
}

//! Vectorized f32 math: `exp`, `erf` and exact GELU over slices.
//!
//! libm's `expf`/`erff` are scalar calls, and they dominated the elementwise time of a
//! transformer step. The approximations here are branch-free (selects, integer bit tricks,
//! no `as` casts), so the compiler turns each loop into straight SIMD code. Every kernel is
//! compiled three times from the same source ([`widest!`]): with AVX-512, with AVX2 (picked at
//! run time by what the CPU has) and portable. None uses fused multiply-adds, so all give
//! bit-identical results and the output does not depend on the machine.
//!
//! Accuracy (checked against libm in the tests): `exp` within 2 ulp over the whole range,
//! including subnormal results, ∞ and NaN; `erf` within 1e−7 absolute (Eigen's rational
//! approximation, evaluated in f64; exactly ±1 beyond |x| = 4); GELU within 2.5e−7·(1 + |x|)
//! and its derivative within 3e−7 (both all-f32, as fast as PyTorch's kernels need them to
//! be: erf in f64 made GELU 3× slower than PyTorch's); f64 tensors keep using libm.

/// Cephes' `expf`: `2ⁿ · p(r)` with `n = round(x / ln 2)` and `|r| ≤ ln 2 / 2`. The scale is
/// applied in two halves so results down to the smallest subnormal and up to overflow are
/// right.
#[inline(always)]
pub fn exp_f32(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    // 1.5·2²³: adding it rounds to an integer held in the low mantissa bits.
    const MAGIC: f32 = 12_582_912.0;
    // ln 2 split so that n·LN2_HI is exact.
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // Below −104 the result rounds to 0; above 89 it overflows to ∞ (NaN passes through).
    let xc = x.clamp(-104.0, 89.0);
    let j = xc * LOG2E + MAGIC;
    let nf = j - MAGIC;
    let n = (j.to_bits() as i32).wrapping_sub(0x4B40_0000);
    let r = xc - nf * LN2_HI - nf * LN2_LO;
    let mut p = 1.987_569_1e-4f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    let y = p * r * r + r + 1.0;
    let n1 = n >> 1;
    let n2 = n.wrapping_sub(n1);
    let s1 = f32::from_bits((n1.wrapping_add(127) as u32) << 23);
    let s2 = f32::from_bits((n2.wrapping_add(127) as u32) << 23);
    y * s1 * s2
}

/// Eigen's rational approximation `x·P(x²)/Q(x²)` of erf on (−4, 4), in `T`, with the final
/// division left to `div(numerator, q)`. Beyond |x| = 4 erf rounds to ±1 in f32, and returning
/// exactly ±1 there keeps `1 + erf(x)` (GELU) exactly 0 for large negative x; NaN passes
/// through.
#[inline(always)]
fn erf_eigen<T: num_traits::Float>(x: T, div: impl Fn(T, T) -> T) -> T {
    let c = |v: f64| T::from(v).expect("a float constant");
    let (four, one) = (c(4.0), T::one());
    let xc = num_traits::Float::clamp(x, -four, four);
    let x2 = xc * xc;
    let mut p = c(-2.726_142_258_013_06e-10);
    for k in [
        2.770_681_424_959_02e-8,
        -2.101_024_020_825_08e-6,
        -5.692_506_394_623_46e-5,
        -7.349_906_303_268_55e-4,
        -2.954_599_808_540_25e-3,
        -1.609_603_332_624_15e-2,
    ] {
        p = p * x2 + c(k);
    }
    let mut q = c(-1.456_607_184_649_96e-5);
    for k in [
        -2.133_740_552_789_05e-4,
        -1.682_826_974_382_03e-3,
        -7.373_329_167_204_68e-3,
        -1.426_473_905_141_89e-2,
    ] {
        q = q * x2 + c(k);
    }
    let e = div(xc * p, q);
    if x >= four {
        one
    } else if x <= -four {
        -one
    } else {
        e
    }
}

/// [`erf_eigen`] in f64: its own error is 6.5e−8, and f32 Horner steps would add ~3e−7 of
/// rounding.
#[inline(always)]
fn erf_f64_poly(x: f64) -> f64 {
    erf_eigen(x, |num, q| num * recip_f64(q))
}

/// `1 / q` to ~46 bits: an f32 division (several times cheaper than an f64 one, which
/// dominated erf) refined by one Newton step.
#[inline(always)]
fn recip_f64(q: f64) -> f64 {
    let r0 = (1.0f32 / q as f32) as f64;
    r0 * (2.0 - q * r0)
}

/// erf within 1e−7 absolute (1.3e−7 relative near 0).
#[inline(always)]
pub fn erf_f32(x: f32) -> f32 {
    erf_f64_poly(x as f64) as f32
}

/// [`erf_eigen`] in f32 (what GELU uses): 2.8× faster than [`erf_f32`]'s f64 evaluation at
/// the cost of ~2 ulp of Horner rounding, which GELU's `x/2 · (1 + erf)` keeps within
/// 2.5e−7·(1 + |x|) of the true value.
#[inline(always)]
fn erf_rational_f32(x: f32) -> f32 {
    erf_eigen(x, |num, q| num / q)
}

/// Exact GELU `x·Φ(x) = x/2 · (1 + erf(x/√2))` in f32, within 2.5e−7·(1 + |x|).
#[inline(always)]
pub fn gelu_f32(x: f32) -> f32 {
    0.5 * x * (1.0 + erf_rational_f32(x * std::f32::consts::FRAC_1_SQRT_2))
}

/// `g · gelu′(x)` for the exact GELU: `g · (Φ(x) + x·φ(x))`, within 3e−7·|g|.
///
/// Φ comes from Abramowitz & Stegun 7.1.26, `erfc(z) ≈ t·R(t)·e^(−z²)` with
/// `t = 1/(1 + p·z)`, because its `e^(−z²)` at `z = |x|/√2` is the `e^(−x²/2)` of the density
/// φ: one exponential serves both (1.5 ns per element on one core against 3.4 for erf in f64
/// plus its own exponential).
#[inline(always)]
pub fn gelu_backward_f32(x: f32, g: f32) -> f32 {
    const INV_SQRT_2PI: f32 = 0.398_942_3;
    let z = x.abs() * std::f32::consts::FRAC_1_SQRT_2;
    let t = 1.0 / (1.0 + 0.327_591_1 * z);
    let mut r = 1.061_405_4f32;
    r = r * t - 1.453_152;
    r = r * t + 1.421_413_7;
    r = r * t - 0.284_496_73;
    r = r * t + 0.254_829_6;
    let e = exp_f32(-0.5 * x * x);
    // Φ(−|x|) = erfc(|x|/√2) / 2.
    let lower = 0.5 * r * t * e;
    let cdf = if x >= 0.0 { 1.0 - lower } else { lower };
    g * (cdf + x * (INV_SQRT_2PI * e))
}

/// `dst[i] = g[i] · gelu′(x[i])` (exact GELU).
pub fn gelu_backward(x: &[f32], g: &[f32], dst: &mut [f32]) {
    assert!(
        x.len() == dst.len() && g.len() == dst.len(),
        "simd: length mismatch"
    );
    widest!({
        for ((d, &x), &g) in dst.iter_mut().zip(x).zip(g) {
            *d = gelu_backward_f32(x, g);
        }
    })
}

/// `x[i] = g[i] · gelu′(x[i])` in place over the GELU's input.
pub fn gelu_backward_in_place(x: &mut [f32], g: &[f32]) {
    assert!(x.len() == g.len(), "simd: length mismatch");
    widest!({
        for (x, &g) in x.iter_mut().zip(g) {
            *x = gelu_backward_f32(*x, g);
        }
    })
}

/// The AVX-512 mask (`__mmask16`) of the first `n` of 16 f32 lanes: all of them from 16 on.
#[inline(always)]
pub fn first_lanes(n: usize) -> u16 {
    if n >= 16 {
        u16::MAX
    } else {
        (1u16 << n) - 1
    }
}

/// The widest vector instruction set this CPU runs, detected once.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Isa {
    /// AVX-512F (with AVX2 and FMA, so code for [`Isa::Avx2`] runs too): 16 f32 lanes.
    Avx512,
    /// AVX2 with FMA (x86-64-v3; e.g. AMD Zen 2/3): 8 f32 lanes.
    Avx2,
    /// The build's baseline (SSE2 on x86-64): 4 f32 lanes.
    Baseline,
}

/// The instruction set [`widest!`] compiles for on this CPU; anything but
/// [`Isa::Baseline`] has AVX2 and FMA.
pub fn isa() -> Isa {
    #[cfg(target_arch = "x86_64")]
    {
        use std::sync::OnceLock;
        static ISA: OnceLock<Isa> = OnceLock::new();
        *ISA.get_or_init(|| {
            let avx2 =
                std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma");
            match (std::is_x86_feature_detected!("avx512f"), avx2) {
                (true, true) => Isa::Avx512,
                (_, true) => Isa::Avx2,
                _ => Isa::Baseline,
            }
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        Isa::Baseline
    }
}

/// Runs `f` with AVX-512F enabled; [`widest!`] calls it only after [`isa`] found the feature.
///
/// # Safety
/// The CPU must support AVX-512F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
pub unsafe fn run_avx512<R>(f: impl FnOnce() -> R) -> R {
    f()
}

/// Runs `f` with AVX2 and FMA enabled; [`widest!`] calls it only after [`isa`] found them.
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
pub unsafe fn run_avx2<R>(f: impl FnOnce() -> R) -> R {
    f()
}

/// `widest!(expr)` evaluates `expr` compiled for the widest vector unit the CPU has
/// ([`isa`]): the expression is pasted into a closure inside a copy built with AVX-512 or
/// AVX2 enabled, so its loops (and the `#[inline(always)]` helpers it calls) run 16 or 8 lanes
/// wide instead of the baseline's 4. Each copy is its own `#[inline(always)]` closure: LLVM
/// left a large closure (the fused interpreter) out of line otherwise, in the baseline build.
/// Rust never contracts `a·b + c` into an FMA on its own, so every copy does the same IEEE
/// operations and gives the same bits.
macro_rules! widest_impl {
    ($body:expr) => {{
        match $crate::cpu::simd::isa() {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `isa` detected AVX-512F on this CPU.
            $crate::cpu::simd::Isa::Avx512 => unsafe {
                $crate::cpu::simd::run_avx512(
                    #[inline(always)]
                    || $body,
                )
            },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `isa` detected AVX2 and FMA on this CPU.
            $crate::cpu::simd::Isa::Avx2 => unsafe {
                $crate::cpu::simd::run_avx2(
                    #[inline(always)]
                    || $body,
                )
            },
            _ => $body,
        }
    }};
}
pub(crate) use widest_impl as widest;

/// Defines `$name(src, dst)` and `$inplace(x)` mapping `$f` over f32 slices, run through
/// [`widest!`].
macro_rules! simd_map {
    ($(#[$doc:meta])* $name:ident, $inplace:ident, $f:path) => {
        $(#[$doc])*
        pub fn $name(src: &[f32], dst: &mut [f32]) {
            assert_eq!(src.len(), dst.len(), "simd: length mismatch");
            widest!({
                for (d, &s) in dst.iter_mut().zip(src) {
                    *d = $f(s);
                }
            })
        }

        /// In-place form of the function above.
        $(#[$doc])*
        #[allow(dead_code)]
        pub fn $inplace(x: &mut [f32]) {
            widest!({
                for v in x.iter_mut() {
                    *v = $f(*v);
                }
            })
        }
    };
}

simd_map!(
    /// `dst[i] = exp(src[i])`.
    exp,
    exp_inplace,
    exp_f32
);
simd_map!(
    /// `dst[i] = erf(src[i])`.
    erf,
    erf_inplace,
    erf_f32
);
simd_map!(
    /// `dst[i] = gelu(src[i])` (exact form).
    gelu,
    gelu_inplace,
    gelu_f32
);

/// Sum of `x` in f64 with eight independent accumulators, so the loop vectorizes (a single
/// running sum is a serial dependency chain).
#[inline]
pub fn sum_f64<T: Copy>(x: &[T], to: impl Fn(T) -> f64) -> f64 {
    let mut acc = [0.0f64; 8];
    let mut chunks = x.chunks_exact(8);
    for c in &mut chunks {
        for k in 0..8 {
            acc[k] += to(c[k]);
        }
    }
    let mut s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for &v in chunks.remainder() {
        s += to(v);
    }
    s
}

/// Max of `x` (NaN wins, −∞ for an empty slice), with sixteen lanes so it vectorizes.
#[inline]
pub fn max_f32(x: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; 16];
    let mut nan = false;
    let mut chunks = x.chunks_exact(16);
    for c in &mut chunks {
        for k in 0..16 {
            let v = c[k];
            nan |= v.is_nan();
            acc[k] = if v > acc[k] { v } else { acc[k] };
        }
    }
    let mut m = f32::NEG_INFINITY;
    for &v in acc.iter().chain(chunks.remainder()) {
        nan |= v.is_nan();
        if v > m {
            m = v;
        }
    }
    if nan {
        f32::NAN
    } else {
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ulps(a: f32, b: f32) -> u32 {
        if a == b {
            return 0;
        }
        (a.to_bits() as i64 - b.to_bits() as i64).unsigned_abs() as u32
    }

    /// A deterministic sweep of floats: a fine grid plus extremes and specials.
    fn inputs(lo: f32, hi: f32) -> Vec<f32> {
        let n = 200_001;
        let mut v: Vec<f32> = (0..n)
            .map(|i| lo + (hi - lo) * i as f32 / (n - 1) as f32)
            .collect();
        v.extend([
            0.0,
            -0.0,
            1e-30,
            -1e-30,
            f32::MIN_POSITIVE,
            f32::MAX,
            f32::MIN,
            f32::INFINITY,
            f32::NEG_INFINITY,
        ]);
        v
    }

    #[test]
    fn exp_matches_libm() {
        let xs = inputs(-110.0, 95.0);
        let mut out = vec![0.0; xs.len()];
        exp(&xs, &mut out);
        for (&x, &y) in xs.iter().zip(&out) {
            let want = libm::expf(x);
            assert!(
                ulps(y, want) <= 2,
                "exp({x:e}) = {y:e}, libm {want:e} ({} ulp)",
                ulps(y, want)
            );
        }
        let mut nan = [f32::NAN];
        exp_inplace(&mut nan);
        assert!(nan[0].is_nan());
    }

    #[test]
    fn erf_matches_libm() {
        let xs = inputs(-6.0, 6.0);
        let mut out = vec![0.0; xs.len()];
        erf(&xs, &mut out);
        for (&x, &y) in xs.iter().zip(&out) {
            // Against the f64 erf: the error bound is of the approximation, not of erff.
            let want = libm::erf(x as f64);
            let y = y as f64;
            assert!(
                (y - want).abs() <= 1e-7,
                "erf({x:e}) = {y:e}, libm {want:e}"
            );
            // Near 0 the error is relative, so tiny inputs keep their precision.
            if x.abs() < 0.5 && x != 0.0 {
                assert!(((y - want) / want).abs() < 1.5e-7, "erf({x:e}) relative");
            }
        }
        let mut nan = [f32::NAN];
        erf_inplace(&mut nan);
        assert!(nan[0].is_nan());
    }

    #[test]
    fn gelu_matches_libm() {
        for x in inputs(-12.0, 12.0) {
            if !x.is_finite() || x.abs() > 1e6 {
                continue;
            }
            let xd = x as f64;
            let want = 0.5 * xd * (1.0 + libm::erf(xd / 2f64.sqrt()));
            let got = gelu_f32(x) as f64;
            assert!(
                (got - want).abs() <= 2.5e-7 * (1.0 + xd.abs()),
                "gelu({x}) = {got}, want {want}"
            );
        }
        let mut d = [0.0f32; 1];
        let xs = inputs(-12.0, 12.0);
        for &x in xs.iter().filter(|x| x.abs() < 20.0) {
            gelu_backward(&[x], &[1.5], &mut d);
            let xd = x as f64;
            let cdf = 0.5 * (1.0 + libm::erf(xd / 2f64.sqrt()));
            let pdf = (-0.5 * xd * xd).exp() / (2.0 * std::f64::consts::PI).sqrt();
            let want = 1.5 * (cdf + xd * pdf);
            assert!(
                (d[0] as f64 - want).abs() <= 3e-7 * 1.5,
                "gelu'({x}) = {}, want {want}",
                d[0] / 1.5
            );
        }
        let mut v = [1.0f32, -1.0, 3.0];
        gelu_inplace(&mut v);
        assert!((v[0] - 0.841_344_7).abs() < 1e-6 && (v[1] + 0.158_655_3).abs() < 1e-6);
    }

    /// The wide build (`widest!`, AVX-512 or AVX2 where the CPU has them) must give the same
    /// bits as the element functions called one at a time here in the baseline build.
    #[test]
    fn wide_builds_give_the_baseline_bits() {
        let xs = inputs(-30.0, 30.0);
        let gs: Vec<f32> = xs.iter().map(|x| 0.75 - x * 0.01).collect();
        let mut d = vec![0.0f32; xs.len()];
        for (wide, scalar) in [
            (exp as fn(&[f32], &mut [f32]), exp_f32 as fn(f32) -> f32),
            (erf, erf_f32),
            (gelu, gelu_f32),
        ] {
            wide(&xs, &mut d);
            for (&x, &got) in xs.iter().zip(&d) {
                let want = scalar(x);
                assert!(
                    got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan()),
                    "x = {x}: wide {got}, baseline {want}"
                );
            }
        }
        gelu_backward(&xs, &gs, &mut d);
        for ((&x, &g), &got) in xs.iter().zip(&gs).zip(&d) {
            let want = gelu_backward_f32(x, g);
            assert!(
                got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan()),
                "x = {x}: wide {got}, baseline {want}"
            );
        }
    }

    #[test]
    fn lane_reductions() {
        let x: Vec<f32> = (0..1003).map(|i| ((i * 37) % 101) as f32 - 50.5).collect();
        let want: f64 = x.iter().map(|&v| v as f64).sum();
        assert!((sum_f64(&x, |v| v as f64) - want).abs() < 1e-9);
        assert_eq!(max_f32(&x), 49.5);
        assert_eq!(max_f32(&[]), f32::NEG_INFINITY);
        let mut y = x.clone();
        y[1001] = f32::NAN;
        assert!(max_f32(&y).is_nan());
        assert_eq!(max_f32(&[f32::NEG_INFINITY, -3.0]), -3.0);
    }
}

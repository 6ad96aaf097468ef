//! `Einsum`: each operand's repeated labels become its diagonal, labels no later operand or
//! the output needs are summed away, and operands join pairwise as one batched matrix
//! product (shared labels kept as batch dims, contracted labels as the inner dim), then the
//! result is permuted to the output's labels.

use super::{one, NodeIn, OpDef};
use crate::import::builder::{Builder, Value, R};
use kiln_kernels::ops::Op;
use kiln_kernels::storage::CpuStorage;
use kiln_kernels::OwnedOperand;

pub(super) const OPS: &[OpDef] = &[def!("Einsum", einsum, ["equation"])];

/// An operand: its value and one label per dim.
struct Term {
    value: Value,
    labels: Vec<char>,
}

/// The labels of one side of the equation, the ellipsis (`...`) as `rank − letters` labels
/// shared by every operand (right-aligned); `None` for the ellipsis count when there is none.
fn labels(spec: &str, rank: Option<usize>, ellipsis: usize) -> R<Vec<char>> {
    let letters: Vec<char> = spec.chars().filter(|c| c.is_ascii_alphabetic()).collect();
    if spec.chars().any(|c| !(c.is_ascii_alphabetic() || c == '.')) {
        return Err(format!("equation term {spec:?}"));
    }
    let Some(at) = spec.find("...") else {
        if spec.contains('.') {
            return Err(format!("equation term {spec:?}"));
        }
        return Ok(letters);
    };
    let n = match rank {
        Some(r) => r
            .checked_sub(letters.len())
            .ok_or_else(|| format!("term {spec:?} has more labels than its rank {r}"))?,
        None => ellipsis,
    };
    // The ellipsis labels: private characters, the last one for the last broadcast dim.
    let dots: Vec<char> = (0..n)
        .map(|k| char::from_u32(0xE000 + (ellipsis - n + k) as u32).expect("private use"))
        .collect();
    let before = spec[..at].chars().filter(|c| c.is_ascii_alphabetic());
    let after = spec[at + 3..].chars().filter(|c| c.is_ascii_alphabetic());
    Ok(before.chain(dots).chain(after).collect())
}

/// `x` with each repeated label reduced to its diagonal.
fn diagonal(b: &mut Builder, mut t: Term) -> R<Term> {
    loop {
        let Some((i, j)) = (0..t.labels.len()).find_map(|i| {
            (i + 1..t.labels.len())
                .find(|&j| t.labels[j] == t.labels[i])
                .map(|j| (i, j))
        }) else {
            return Ok(t);
        };
        let s = t.value.shape().to_vec();
        if s[i] != s[j] {
            return Err(format!(
                "label {:?} has sizes {} and {}",
                t.labels[i], s[i], s[j]
            ));
        }
        // Zero everything off the (i, j) diagonal, then sum dim j away.
        let mut mask_shape = vec![1; s.len()];
        mask_shape[i] = s[i];
        mask_shape[j] = s[j];
        let n = s[i];
        let eye = b.constant(OwnedOperand::dense(
            CpuStorage::Bool((0..n * n).map(|p| p / n == p % n).collect()),
            &mask_shape,
        ));
        let zero = b.scalar(0.0, t.value.dtype());
        let kept = b.op(Op::Where, &[&eye, &t.value, &zero])?;
        t.value = b.op(
            Op::Sum {
                dims: [j].into_iter().collect(),
                keepdim: false,
            },
            &[&kept],
        )?;
        t.labels.remove(j);
    }
}

/// Sums away the labels of `t` not in `keep`.
fn sum_unneeded(b: &mut Builder, t: Term, keep: &[char]) -> R<Term> {
    let dims: Vec<usize> = (0..t.labels.len())
        .filter(|&d| !keep.contains(&t.labels[d]))
        .collect();
    if dims.is_empty() {
        return Ok(t);
    }
    let value = b.op(
        Op::Sum {
            dims: dims.iter().copied().collect(),
            keepdim: false,
        },
        &[&t.value],
    )?;
    let labels = (0..t.labels.len())
        .filter(|d| !dims.contains(d))
        .map(|d| t.labels[d])
        .collect();
    Ok(Term { value, labels })
}

/// The size of each label of `t`.
fn size_of(t: &Term, l: char) -> usize {
    t.value.shape()[t.labels.iter().position(|&x| x == l).expect("a label of t")]
}

/// `t` permuted to `order` (labels of t), then reshaped to `shape`.
fn arrange(b: &mut Builder, t: &Term, order: &[char], shape: &[usize]) -> R<Value> {
    let perm: Vec<usize> = order
        .iter()
        .map(|l| t.labels.iter().position(|x| x == l).expect("a label of t"))
        .collect();
    let v = b.permute(&t.value, &perm)?;
    b.reshape(&v, shape)
}

/// The product of two terms keeping the labels in `keep`.
fn join(b: &mut Builder, x: Term, y: Term, keep: &[char]) -> R<Term> {
    let batch: Vec<char> = x
        .labels
        .iter()
        .copied()
        .filter(|l| y.labels.contains(l) && keep.contains(l))
        .collect();
    let inner: Vec<char> = x
        .labels
        .iter()
        .copied()
        .filter(|l| y.labels.contains(l) && !keep.contains(l))
        .collect();
    let left: Vec<char> = x
        .labels
        .iter()
        .copied()
        .filter(|l| !y.labels.contains(l))
        .collect();
    let right: Vec<char> = y
        .labels
        .iter()
        .copied()
        .filter(|l| !x.labels.contains(l))
        .collect();
    // Shared labels broadcast (an ellipsis dim of 1 against n).
    let shared = |l: char| size_of(&x, l).max(size_of(&y, l));
    for &l in batch.iter().chain(&inner) {
        let (a, c) = (size_of(&x, l), size_of(&y, l));
        if a != c && a != 1 && c != 1 {
            return Err(format!("label {l:?} has sizes {a} and {c}"));
        }
    }
    let expand = |b: &mut Builder, t: &Term| -> R<Term> {
        let full: Vec<usize> = t
            .labels
            .iter()
            .map(|&l| {
                if batch.contains(&l) || inner.contains(&l) {
                    shared(l)
                } else {
                    size_of(t, l)
                }
            })
            .collect();
        let value = if full.as_slice() == t.value.shape() {
            t.value.clone()
        } else {
            b.op(Op::Expand(full.iter().copied().collect()), &[&t.value])?
        };
        Ok(Term {
            value,
            labels: t.labels.clone(),
        })
    };
    let (x, y) = (expand(b, &x)?, expand(b, &y)?);
    let prod = |ls: &[char], t: &Term| ls.iter().map(|&l| size_of(t, l)).product::<usize>();
    let (nb, nk) = (prod(&batch, &x), prod(&inner, &x));
    let (nm, nn) = (prod(&left, &x), prod(&right, &y));
    let xo: Vec<char> = batch.iter().chain(&left).chain(&inner).copied().collect();
    let yo: Vec<char> = batch.iter().chain(&inner).chain(&right).copied().collect();
    let a = arrange(b, &x, &xo, &[nb, nm, nk])?;
    let c = arrange(b, &y, &yo, &[nb, nk, nn])?;
    let p = b.op(Op::Matmul, &[&a, &c])?;
    let labels: Vec<char> = batch.iter().chain(&left).chain(&right).copied().collect();
    let shape: Vec<usize> = batch
        .iter()
        .map(|&l| size_of(&x, l))
        .chain(left.iter().map(|&l| size_of(&x, l)))
        .chain(right.iter().map(|&l| size_of(&y, l)))
        .collect();
    Ok(Term {
        value: b.reshape(&p, &shape)?,
        labels,
    })
}

fn einsum(b: &mut Builder, n: &NodeIn) -> R<Vec<Value>> {
    let eq: String = n
        .attrs
        .string("equation")?
        .ok_or("equation is required")?
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let (lhs, rhs) = match eq.split_once("->") {
        Some((l, r)) => (l, Some(r)),
        None => (eq.as_str(), None),
    };
    let specs: Vec<&str> = lhs.split(',').collect();
    if specs.len() != n.inputs.len() {
        return Err(format!(
            "{} terms for {} inputs",
            specs.len(),
            n.inputs.len()
        ));
    }
    // The widest ellipsis among the operands.
    let mut ellipsis = 0;
    for (k, spec) in specs.iter().enumerate() {
        if spec.contains("...") {
            let letters = spec.chars().filter(|c| c.is_ascii_alphabetic()).count();
            ellipsis = ellipsis.max(n.input(k)?.rank().saturating_sub(letters));
        }
    }
    let mut terms = Vec::new();
    for (k, spec) in specs.iter().enumerate() {
        let v = n.input(k)?;
        let ls = labels(spec, Some(v.rank()), ellipsis)?;
        if ls.len() != v.rank() {
            return Err(format!("term {spec:?} for an input of rank {}", v.rank()));
        }
        terms.push(diagonal(
            b,
            Term {
                value: v.clone(),
                labels: ls,
            },
        )?);
    }
    let out: Vec<char> = match rhs {
        Some(r) => labels(r, None, ellipsis)?,
        None => {
            // Implicit: the ellipsis, then the letters used once, sorted.
            let all: Vec<char> = specs.iter().flat_map(|s| s.chars()).collect();
            let mut once: Vec<char> = all
                .iter()
                .copied()
                .filter(|c| c.is_ascii_alphabetic() && all.iter().filter(|d| *d == c).count() == 1)
                .collect();
            once.sort_unstable();
            (0..ellipsis)
                .map(|k| char::from_u32(0xE000 + k as u32).expect("private use"))
                .chain(once)
                .collect()
        }
    };
    // Join left to right, keeping what the output or a later operand reads.
    let mut rest = terms.into_iter();
    let first = rest.next().ok_or("no inputs")?;
    let later: Vec<Term> = rest.collect();
    let needed = |from: usize, later: &[Term]| -> Vec<char> {
        out.iter()
            .copied()
            .chain(later[from..].iter().flat_map(|t| t.labels.iter().copied()))
            .collect()
    };
    let mut acc = sum_unneeded(b, first, &needed(0, &later))?;
    let mut later = later;
    let count = later.len();
    for k in 0..count {
        let t = std::mem::replace(
            &mut later[k],
            Term {
                value: acc.value.clone(),
                labels: Vec::new(),
            },
        );
        let keep = needed(k + 1, &later);
        let t = sum_unneeded(
            b,
            t,
            &keep
                .iter()
                .copied()
                .chain(acc.labels.clone())
                .collect::<Vec<_>>(),
        )?;
        acc = join(b, acc, t, &keep)?;
    }
    let acc = sum_unneeded(b, acc, &out)?;
    if acc.labels.len() != out.len() || out.iter().any(|l| !acc.labels.contains(l)) {
        return Err(format!("output labels of {eq:?} are not among the inputs'"));
    }
    let shape: Vec<usize> = out.iter().map(|&l| size_of(&acc, l)).collect();
    one(arrange(b, &acc, &out, &shape)?)
}

//! Memory planning: where every value of a graph lives while the executor runs it. Views
//! alias their base; every other value gets a dense buffer from a fixed set of planned buffers,
//! reused by later values once everything reading it (directly or through a view) has run;
//! fused nodes may write straight into a dying operand or into the state they update (see
//! [`crate::inplace`]). Results the caller receives (outputs, state updates, gradients) keep
//! their buffers to the end of the call, and no later value reuses them.

use crate::inplace::InPlace;
use crate::ir::{Graph, InputKind, ValueId};
use kiln_kernels::layout::Layout;
use kiln_kernels::ops::Op;
use kiln_kernels::DType;

/// Where one value lives during a call.
#[derive(Clone, Debug, PartialEq)]
pub enum Placement {
    /// A captured tensor (state or constant), read in place.
    Bound,
    /// Dense at offset 0 of planned buffer `buffer` (arguments and gradient inputs are copied
    /// into theirs at the start of each call).
    Buffer(usize),
    /// A view of value `base` with this layout (permute, expand, slice, or a reshape the base's
    /// layout allows without copying).
    View {
        /// The operand it views.
        base: ValueId,
        /// Its layout over the base's storage.
        layout: Layout,
    },
    /// Written in place into the captured state of input `input` (an optimizer update).
    State(ValueId),
}

/// One planned buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BufferSpec {
    /// Element type.
    pub dtype: DType,
    /// Elements: the largest value it holds.
    pub len: usize,
}

impl BufferSpec {
    /// Size in bytes.
    pub fn bytes(&self) -> usize {
        self.len * self.dtype.size_in_bytes()
    }
}

/// The result of planning: buffers and each value's placement.
#[derive(Clone, Debug, Default)]
pub struct MemoryPlan {
    /// The buffers, allocated once.
    pub buffers: Vec<BufferSpec>,
    /// Per value id: where it lives (`None` for ids not in the graph or never needed).
    pub placement: Vec<Option<Placement>>,
    /// Per node: where it writes in place, if it does (a dying operand or a state).
    pub in_place: Vec<Option<InPlace>>,
    /// The most bytes of values needed at once (the lower bound on the buffers' total).
    pub live_peak_bytes: usize,
}

impl MemoryPlan {
    /// Bytes of all planned buffers (the arena the executor holds).
    pub fn arena_bytes(&self) -> usize {
        self.buffers.iter().map(BufferSpec::bytes).sum()
    }

    /// The buffer holding `v`'s elements (following views), if it is in one.
    pub fn buffer_of(&self, mut v: ValueId) -> Option<usize> {
        loop {
            match self.placement.get(v as usize)?.as_ref()? {
                Placement::Buffer(b) => return Some(*b),
                Placement::View { base, .. } => v = *base,
                Placement::Bound | Placement::State(_) => return None,
            }
        }
    }
}

/// The layout a view-like op gives its operand's layout, or `None` when the op must copy
/// (a reshape the strides do not allow, or not a view op).
pub fn view_layout(op: &Op, base: &Layout) -> Option<Layout> {
    match op {
        Op::Permute(p) => Some(base.permute(p)),
        Op::Expand(s) => Some(base.broadcast_to(s)),
        Op::Slice {
            dim,
            start,
            len,
            step,
        } => Some(base.slice(*dim, *start, *len, *step)),
        Op::Reshape(s) => base.reshape_view(s),
        _ => None,
    }
}

/// Per value id, the index of the last node that reads it (`usize::MAX`: none).
pub fn last_uses(g: &Graph) -> Vec<usize> {
    let mut last_use = vec![usize::MAX; g.id_bound()];
    for (i, node) in g.nodes.iter().enumerate() {
        for &a in &node.args {
            last_use[a as usize] = i;
        }
    }
    last_use
}

/// Plans `g` as [`crate::Executable::new`] does, without making an executable (what a
/// compile report shows of a graph that is not run at these shapes).
pub fn plan_graph(g: &Graph) -> MemoryPlan {
    plan(g, crate::inplace::plan(g, &last_uses(g)))
}

/// Plans `g` given its in-place plan (see [`crate::inplace::plan`]).
pub fn plan(g: &Graph, mut in_place: Vec<Option<InPlace>>) -> MemoryPlan {
    let n = g.id_bound();
    let mut placement: Vec<Option<Placement>> = vec![None; n];
    let mut layouts: Vec<Option<Layout>> = vec![None; n];
    // Inputs: captured tensors in place; arguments and gradients get a dense buffer each.
    let mut needs_buffer: Vec<bool> = vec![false; n];
    for i in &g.inputs {
        let id = i.id as usize;
        match (&i.kind, &i.value) {
            (InputKind::State | InputKind::Const, Some(v)) => {
                placement[id] = Some(Placement::Bound);
                layouts[id] = Some(v.operand().layout().clone());
            }
            _ => {
                needs_buffer[id] = true;
                layouts[id] = Some(Layout::contiguous(&i.shape));
            }
        }
    }
    for (k, node) in g.nodes.iter().enumerate() {
        let id = node.id as usize;
        let view = node
            .args
            .first()
            .and_then(|&a| layouts[a as usize].as_ref())
            .and_then(|l| view_layout(&node.op, l));
        match (view, in_place[k]) {
            (Some(l), _) => {
                layouts[id] = Some(l.clone());
                placement[id] = Some(Placement::View {
                    base: node.args[0],
                    layout: l,
                });
            }
            (None, Some(InPlace::State(t))) if dense_state(g, t) => {
                layouts[id] = layouts[t as usize].clone();
                placement[id] = Some(Placement::State(t));
            }
            (None, place) => {
                if matches!(place, Some(InPlace::State(_))) {
                    in_place[k] = None;
                }
                layouts[id] = Some(Layout::contiguous(&node.shape));
                needs_buffer[id] = true;
            }
        }
    }

    // The value whose buffer each value's elements are in (itself unless a view).
    let mut owner: Vec<ValueId> = (0..n as ValueId).collect();
    for node in &g.nodes {
        if let Some(Placement::View { base, .. }) = &placement[node.id as usize] {
            owner[node.id as usize] = owner[*base as usize];
        }
    }
    // Last node at which each buffer owner's elements are read, through any alias; results
    // are read after the last node.
    const END: usize = usize::MAX;
    let mut end = vec![0usize; n];
    for (k, node) in g.nodes.iter().enumerate() {
        for &a in &node.args {
            let o = owner[a as usize] as usize;
            end[o] = end[o].max(k);
        }
    }
    for r in g.roots() {
        end[owner[r as usize] as usize] = END;
    }

    // An in-place write is dropped when the operand's buffer is still read afterwards
    // through a view, or is a result.
    for (k, node) in g.nodes.iter().enumerate() {
        if let Some(InPlace::Operand(a)) = in_place[k] {
            let ok = owner[a as usize] == a
                && end[a as usize] == k
                && matches!(needs_buffer.get(node.id as usize), Some(true));
            if !ok {
                in_place[k] = None;
            }
        }
    }

    // Buffer-holding values, joined with the operands they overwrite in place into one
    // group: the nodes from the first one's definition to the last one's end (inputs are
    // written before node 0).
    let types = g.types();
    let mut def = vec![0usize; n];
    for (k, node) in g.nodes.iter().enumerate() {
        def[node.id as usize] = k;
    }
    let mut group_of: Vec<Option<usize>> = vec![None; n];
    let mut groups: Vec<Group> = Vec::new();
    let holders = g
        .inputs
        .iter()
        .map(|i| i.id)
        .chain(g.nodes.iter().map(|node| node.id))
        .filter(|&v| needs_buffer[v as usize]);
    for v in holders {
        let (shape, dtype) = types[v as usize].clone().expect("planned value has a type");
        let len = shape.iter().product::<usize>();
        let (first, last) = (def[v as usize], end[v as usize].max(def[v as usize]));
        let handover = g
            .nodes
            .get(def[v as usize])
            .filter(|node| node.id == v)
            .and_then(|_| match in_place[def[v as usize]] {
                Some(InPlace::Operand(a)) => group_of[a as usize],
                _ => None,
            });
        let gi = match handover {
            Some(gi) => {
                let gr = &mut groups[gi];
                gr.len = gr.len.max(len);
                gr.last = gr.last.max(last);
                gi
            }
            None => {
                groups.push(Group {
                    dtype,
                    len,
                    first,
                    last,
                });
                groups.len() - 1
            }
        };
        group_of[v as usize] = Some(gi);
    }
    let live_peak_bytes = live_peak(&groups, g.nodes.len());
    let buffer_of_group = assign(&groups);
    let mut buffers: Vec<BufferSpec> = Vec::new();
    for (gr, &b) in groups.iter().zip(&buffer_of_group) {
        if b == buffers.len() {
            buffers.push(BufferSpec {
                dtype: gr.dtype,
                len: 0,
            });
        }
        buffers[b].len = buffers[b].len.max(gr.len);
    }
    for (v, gi) in group_of.iter().enumerate() {
        if let Some(gi) = gi {
            placement[v] = Some(Placement::Buffer(buffer_of_group[*gi]));
        }
    }
    MemoryPlan {
        buffers,
        placement,
        in_place,
        live_peak_bytes,
    }
}

/// The most bytes of groups live at any node: the least any buffer assignment needs.
fn live_peak(groups: &[Group], nodes: usize) -> usize {
    let mut delta = vec![0i64; nodes + 2];
    for gr in groups {
        let bytes = (gr.len * gr.dtype.size_in_bytes()) as i64;
        delta[gr.first] += bytes;
        if gr.last < nodes {
            delta[gr.last + 1] -= bytes;
        }
    }
    let (mut live, mut peak) = (0i64, 0i64);
    for d in delta {
        live += d;
        peak = peak.max(live);
    }
    peak as usize
}

/// True when input `t`'s tensor is its whole storage, dense (a fused node can write it).
fn dense_state(g: &Graph, t: ValueId) -> bool {
    g.input(t).and_then(|i| i.value.as_ref()).is_some_and(|v| {
        let t = v.operand();
        t.is_contiguous() && t.layout().offset == 0 && t.storage().read().len() == t.numel()
    })
}

/// Values that occupy one buffer in turn (a value and those written in place over it).
struct Group {
    dtype: DType,
    len: usize,
    /// The node defining the first value (0 for inputs).
    first: usize,
    /// The last node reading any of them (`usize::MAX` for results).
    last: usize,
}

/// Assigns groups to buffers, largest first: each goes into the first buffer of its dtype
/// (at least as large, as every group in it so far is) holding no group whose nodes overlap
/// its own, else into a new buffer (greedy by size: close to the peak of live bytes, unlike
/// handing out buffers in schedule order, which strands large buffers on small values).
/// Returns each group's buffer; buffers are numbered in order of first use.
fn assign(groups: &[Group]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..groups.len()).collect();
    order.sort_by_key(|&i| (std::cmp::Reverse(groups[i].len), groups[i].first));
    let mut members: Vec<Vec<usize>> = Vec::new();
    let mut kind: Vec<DType> = Vec::new();
    let mut slot = vec![0usize; groups.len()];
    for i in order {
        let gr = &groups[i];
        let fits = |b: &usize| {
            kind[*b] == gr.dtype
                && members[*b].iter().all(|&j| {
                    let o = &groups[j];
                    o.last < gr.first || gr.last < o.first
                })
        };
        let b = match (0..members.len()).find(fits) {
            Some(b) => b,
            None => {
                members.push(Vec::new());
                kind.push(gr.dtype);
                members.len() - 1
            }
        };
        members[b].push(i);
        slot[i] = b;
    }
    // Renumber by first use so the numbering follows the schedule.
    let mut renumber = vec![usize::MAX; members.len()];
    let mut next = 0;
    for s in slot.iter_mut() {
        if renumber[*s] == usize::MAX {
            renumber[*s] = next;
            next += 1;
        }
        *s = renumber[*s];
    }
    slot
}

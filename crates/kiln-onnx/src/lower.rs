//! Each Kiln op as standard ONNX nodes (default domain). One function per op family, as the
//! shape rules are (`kiln_kernels::ops::infer`); the elementwise unary ops name their ONNX
//! counterpart beside their other declarations (`UnaryOp::onnx`). A fused op lowers to the
//! composition of its steps; an op with no lowering (training-only ops, random sampling) is
//! an error naming it.

use crate::error::OnnxError;
use crate::proto::attribute_proto::AttributeType;
use crate::proto::tensor_proto::DataType;
use crate::proto::{AttributeProto, NodeProto, TensorProto};
use crate::types::onnx_dtype;
use kiln_kernels::buffer::CpuStorage;
use kiln_kernels::dtype::DType;
use kiln_kernels::ops::fused::{FusedProgram, FusedStep};
use kiln_kernels::ops::unary::OnnxUnary;
use kiln_kernels::ops::{Activation, CmpOp, IntOp, Op, UnaryOp};
use kiln_kernels::OwnedOperand;
use kiln_runtime::ir::{Node, ValueId};
use kiln_runtime::symbolic::Dim;

/// The name of value `id` in the ONNX graph.
pub(crate) fn value_name(id: ValueId) -> String {
    format!("v{id}")
}

fn unsupported(what: impl Into<String>) -> OnnxError {
    OnnxError::Unsupported(what.into())
}

fn attr_int(name: &str, v: i64) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::Int as i32),
        i: Some(v),
        ..Default::default()
    }
}

fn attr_float(name: &str, v: f64) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::Float as i32),
        f: Some(v as f32),
        ..Default::default()
    }
}

fn attr_ints(name: &str, v: impl IntoIterator<Item = i64>) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::Ints as i32),
        ints: v.into_iter().collect(),
        ..Default::default()
    }
}

fn attr_string(name: &str, v: &str) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::String as i32),
        s: Some(v.as_bytes().to_vec()),
        ..Default::default()
    }
}

/// Little-endian bytes of `values` as elements of `dtype`, converted as Kiln fills a tensor
/// (`CpuStorage::from_f64s`) and laid out as its weight files are (`operand_bytes`).
fn encode(dtype: DType, values: impl ExactSizeIterator<Item = f64>) -> Vec<u8> {
    let n = values.len();
    let storage = CpuStorage::from_f64s(dtype, values);
    kiln_runtime::weights::operand_bytes(OwnedOperand::dense(storage, &[n]).operand())
}

/// Writes ONNX nodes and initializers for the nodes of one graph.
pub(crate) struct Emitter<'a> {
    /// The nodes written so far, in order.
    pub nodes: Vec<NodeProto>,
    /// Constants the nodes read.
    pub initializers: Vec<TensorProto>,
    opset: i64,
    /// Dtype of each value, by id.
    dtypes: &'a [Option<DType>],
    /// Dims of each value, by id (symbolic where they follow the batch).
    dims: &'a dyn Fn(ValueId) -> Option<Vec<Dim>>,
    fresh: usize,
    /// The value whose dim 0 is the batch size, and the batch size as a 1-element INT64
    /// tensor once a node needed it.
    batch_source: Option<String>,
    batch_size: Option<String>,
}

impl<'a> Emitter<'a> {
    pub(crate) fn new(
        opset: i64,
        dtypes: &'a [Option<DType>],
        dims: &'a dyn Fn(ValueId) -> Option<Vec<Dim>>,
    ) -> Emitter<'a> {
        Emitter {
            nodes: Vec::new(),
            initializers: Vec::new(),
            opset,
            dtypes,
            dims,
            fresh: 0,
            batch_source: None,
            batch_size: None,
        }
    }

    /// Names the value whose dim 0 is the batch size (a graph input).
    pub(crate) fn set_batch_source(&mut self, name: String) {
        self.batch_source = Some(name);
    }

    /// The batch size as a 1-element INT64 tensor, read from the batch input's shape.
    fn batch_size(&mut self) -> Result<String, OnnxError> {
        if let Some(b) = &self.batch_size {
            return Ok(b.clone());
        }
        let source = self.batch_source.clone().ok_or_else(|| {
            OnnxError::Graph("a batch-dependent shape in a graph with no batch".into())
        })?;
        let shape = self.emit("Shape", vec![source], None, vec![]);
        let zero = self.ints(&[0]);
        let b = self.emit("Gather", vec![shape, zero], None, vec![attr_int("axis", 0)]);
        self.batch_size = Some(b.clone());
        Ok(b)
    }

    /// A 1-D INT64 shape tensor for `dims`, computing batch-dependent dims when the graph runs.
    fn runtime_shape(&mut self, dims: &[Dim]) -> Result<String, OnnxError> {
        if dims.iter().all(|d| d.is_fixed()) {
            return Ok(self.ints(&dims.iter().map(|d| d.add).collect::<Vec<_>>()));
        }
        let mut parts = Vec::with_capacity(dims.len());
        for d in dims {
            parts.push(if d.is_fixed() {
                self.ints(&[d.add])
            } else {
                let mut v = self.batch_size()?;
                if d.mul != 1 {
                    let k = self.ints(&[d.mul as i64]);
                    v = self.emit("Mul", vec![v, k], None, vec![]);
                }
                if d.add != 0 {
                    let c = self.ints(&[d.add]);
                    v = self.emit("Add", vec![v, c], None, vec![]);
                }
                v
            });
        }
        Ok(self.emit("Concat", parts, None, vec![attr_int("axis", 0)]))
    }

    /// `name`: a tensor of `dims` (some following the batch) filled with `value`.
    pub(crate) fn fill(
        &mut self,
        name: String,
        dtype: DType,
        dims: &[Dim],
        value: f64,
    ) -> Result<(), OnnxError> {
        let shape = self.runtime_shape(dims)?;
        let one = TensorProto {
            dims: vec![1],
            data_type: Some(onnx_dtype(dtype)),
            raw_data: Some(encode(dtype, std::iter::once(value))),
            ..Default::default()
        };
        let attr = AttributeProto {
            name: Some("value".into()),
            r#type: Some(AttributeType::Tensor as i32),
            t: Some(one),
            ..Default::default()
        };
        self.emit("ConstantOfShape", vec![shape], Some(name), vec![attr]);
        Ok(())
    }

    fn dtype(&self, id: ValueId) -> DType {
        self.dtypes
            .get(id as usize)
            .copied()
            .flatten()
            .expect("every operand has a type")
    }

    fn dims_of(&self, id: ValueId) -> Result<Vec<Dim>, OnnxError> {
        (self.dims)(id).ok_or_else(|| OnnxError::Graph(format!("value %{id} has no shape")))
    }

    fn temp(&mut self) -> String {
        self.fresh += 1;
        format!("t{}", self.fresh)
    }

    /// Appends a node of `op_type` and returns its output's name (`out`, or a fresh one).
    fn emit(
        &mut self,
        op_type: &str,
        inputs: Vec<String>,
        out: Option<String>,
        attrs: Vec<AttributeProto>,
    ) -> String {
        let out = out.unwrap_or_else(|| self.temp());
        self.nodes.push(NodeProto {
            input: inputs,
            output: vec![out.clone()],
            name: Some(format!("n{}", self.nodes.len())),
            op_type: Some(op_type.into()),
            attribute: attrs,
            ..Default::default()
        });
        out
    }

    /// An initializer of `dtype`, `dims` and little-endian `bytes`; returns its name.
    pub(crate) fn constant(
        &mut self,
        name: Option<String>,
        dtype: DType,
        dims: &[usize],
        bytes: Vec<u8>,
    ) -> String {
        let name = name.unwrap_or_else(|| self.temp());
        self.initializers.push(TensorProto {
            dims: dims.iter().map(|&d| d as i64).collect(),
            data_type: Some(onnx_dtype(dtype)),
            raw_data: Some(bytes),
            name: Some(name.clone()),
            ..Default::default()
        });
        name
    }

    fn scalar(&mut self, dtype: DType, v: f64) -> String {
        self.constant(None, dtype, &[], encode(dtype, std::iter::once(v)))
    }

    fn ints(&mut self, v: &[i64]) -> String {
        let bytes = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        self.constant(None, DType::I64, &[v.len()], bytes)
    }

    /// `x` (of dtype `from`) as `to`, through a Cast node when they differ.
    fn cast(&mut self, x: String, from: DType, to: DType) -> String {
        if from == to {
            return x;
        }
        self.emit(
            "Cast",
            vec![x],
            None,
            vec![attr_int("to", onnx_dtype(to) as i64)],
        )
    }

    /// Operand `k` of `node`, cast to `to`.
    fn arg(&mut self, node: &Node, k: usize, to: DType) -> String {
        let id = node.args[k];
        let from = self.dtype(id);
        self.cast(value_name(id), from, to)
    }

    /// Lowers one node; its result is named `value_name(node.id)`.
    pub(crate) fn lower(&mut self, node: &Node) -> Result<(), OnnxError> {
        let out = Some(value_name(node.id));
        let d = node.dtype;
        match &node.op {
            Op::Unary(u) => {
                // Operands are cast to the output dtype, except that logical not reads bools.
                let operand = if *u == UnaryOp::LogicalNot {
                    DType::Bool
                } else {
                    d
                };
                let x = self.arg(node, 0, operand);
                self.unary(*u, x, d, out)?;
            }
            op if op.is_binary() => {
                let (a, b) = (self.arg(node, 0, d), self.arg(node, 1, d));
                self.binary(op, a, b, out)?;
            }
            Op::IntBinary(i) => {
                let (a, b) = (self.arg(node, 0, d), self.arg(node, 1, d));
                let (op_type, attrs) = match i {
                    IntOp::Div => ("Div", vec![]),
                    IntOp::Rem => ("Mod", vec![attr_int("fmod", 1)]),
                    IntOp::Mod => ("Mod", vec![]),
                    IntOp::And => ("BitwiseAnd", vec![]),
                    IntOp::Or => ("BitwiseOr", vec![]),
                    IntOp::Xor => ("BitwiseXor", vec![]),
                    // ONNX shifts unsigned integers only.
                    IntOp::Shl | IntOp::Shr if !d.is_unsigned() => {
                        return Err(unsupported(format!(
                            "{} of {d}: ONNX's BitShift takes unsigned integers",
                            i.name()
                        )))
                    }
                    IntOp::Shl => ("BitShift", vec![attr_string("direction", "LEFT")]),
                    IntOp::Shr => ("BitShift", vec![attr_string("direction", "RIGHT")]),
                };
                self.emit(op_type, vec![a, b], out, attrs);
            }
            Op::Compare(c) => {
                let common = DType::promote(self.dtype(node.args[0]), self.dtype(node.args[1]));
                let (a, b) = (self.arg(node, 0, common), self.arg(node, 1, common));
                self.compare(*c, a, b, out);
            }
            Op::Where => {
                let c = self.arg(node, 0, DType::Bool);
                let (a, b) = (self.arg(node, 1, d), self.arg(node, 2, d));
                self.emit("Where", vec![c, a, b], out, vec![]);
            }
            Op::Sum { dims, keepdim }
            | Op::Max { dims, keepdim }
            | Op::Min { dims, keepdim }
            | Op::Prod { dims, keepdim } => {
                let op_type = match &node.op {
                    Op::Sum { .. } => "ReduceSum",
                    Op::Max { .. } => "ReduceMax",
                    Op::Min { .. } => "ReduceMin",
                    _ => "ReduceProd",
                };
                let x = self.arg(node, 0, d);
                let axes: Vec<i64> = dims.iter().map(|&a| a as i64).collect();
                self.reduce(op_type, x, &axes, *keepdim, out);
            }
            Op::ArgMax { dim, keepdim } | Op::ArgMin { dim, keepdim } => {
                let op_type = if matches!(node.op, Op::ArgMax { .. }) {
                    "ArgMax"
                } else {
                    "ArgMin"
                };
                let x = value_name(node.args[0]);
                let attrs = vec![
                    attr_int("axis", *dim as i64),
                    attr_int("keepdims", *keepdim as i64),
                ];
                self.emit(op_type, vec![x], out, attrs);
            }
            Op::Numel { dims, dtype } => self.numel(node, dims, *dtype, out)?,
            Op::Reshape(_) => {
                let target = self.shape_constant(node.id, "reshape")?;
                self.emit(
                    "Reshape",
                    vec![value_name(node.args[0]), target],
                    out,
                    vec![],
                );
            }
            Op::Permute(perm) => {
                let attrs = vec![attr_ints("perm", perm.iter().map(|&p| p as i64))];
                self.emit("Transpose", vec![value_name(node.args[0])], out, attrs);
            }
            Op::Expand(_) => self.expand(node, out)?,
            Op::Slice {
                dim,
                start,
                len,
                step,
            } => self.slice(node, *dim, *start, *len, *step, out)?,
            Op::Contiguous => {
                self.emit("Identity", vec![value_name(node.args[0])], out, vec![]);
            }
            Op::Cast(to) => {
                let from = self.dtype(node.args[0]);
                self.cast_into(value_name(node.args[0]), from, *to, out);
            }
            Op::Cat(dim) => {
                let parts = (0..node.args.len()).map(|k| self.arg(node, k, d)).collect();
                self.emit("Concat", parts, out, vec![attr_int("axis", *dim as i64)]);
            }
            Op::IndexSelect(dim) => {
                let (x, i) = (value_name(node.args[0]), value_name(node.args[1]));
                self.emit(
                    "Gather",
                    vec![x, i],
                    out,
                    vec![attr_int("axis", *dim as i64)],
                );
            }
            Op::Gather(dim) => {
                let (x, i) = (value_name(node.args[0]), value_name(node.args[1]));
                self.emit(
                    "GatherElements",
                    vec![x, i],
                    out,
                    vec![attr_int("axis", *dim as i64)],
                );
            }
            Op::Matmul => {
                self.matmul(node, None)?;
            }
            Op::MatmulAct(act) => {
                self.matmul(node, Some(*act))?;
            }
            Op::Unfold {
                kernel,
                stride,
                padding,
                dilation,
                pad_value,
            } => {
                self.unfold(node, *kernel, *stride, *padding, *dilation, *pad_value, out)?;
            }
            Op::Fold {
                output,
                kernel,
                stride,
                padding,
                dilation,
            } => {
                if self.opset < 18 {
                    return Err(unsupported("fold (col2im) needs opset 18 or later"));
                }
                let image = self.ints(&output.map(|v| v as i64));
                let block = self.ints(&kernel.map(|v| v as i64));
                let attrs = vec![
                    attr_ints("dilations", dilation.map(|v| v as i64)),
                    attr_ints("pads", pads(*padding)),
                    attr_ints("strides", stride.map(|v| v as i64)),
                ];
                let x = value_name(node.args[0]);
                self.emit("Col2Im", vec![x, image, block], out, attrs);
            }
            Op::Conv2d(p) => {
                let kernel = self.dims_of(node.args[1])?;
                let kernel: Vec<i64> = kernel[2..].iter().map(|k| k.add).collect();
                let attrs = vec![
                    attr_ints("kernel_shape", kernel),
                    attr_ints("strides", p.stride.map(|v| v as i64)),
                    attr_ints("pads", pads(p.padding)),
                    attr_ints("dilations", p.dilation.map(|v| v as i64)),
                    attr_int("group", p.groups as i64),
                ];
                let inputs = (0..node.args.len()).map(|k| self.arg(node, k, d)).collect();
                self.emit("Conv", inputs, out, attrs);
            }
            Op::MaxPool2d(p) => {
                let attrs = vec![
                    attr_ints("kernel_shape", p.kernel.map(|v| v as i64)),
                    attr_ints("strides", p.stride.map(|v| v as i64)),
                    attr_ints("pads", pads(p.padding)),
                    attr_ints("dilations", p.dilation.map(|v| v as i64)),
                    attr_int("ceil_mode", p.ceil_mode as i64),
                ];
                self.emit("MaxPool", vec![value_name(node.args[0])], out, attrs);
            }
            Op::Softmax { dim, log } => {
                let op_type = if *log { "LogSoftmax" } else { "Softmax" };
                let x = value_name(node.args[0]);
                self.emit(op_type, vec![x], out, vec![attr_int("axis", *dim as i64)]);
            }
            Op::LayerNorm { eps } => self.layer_norm(node, *eps, out)?,
            Op::Attention { scale, causal } => self.attention(node, *scale, *causal, out)?,
            Op::Fused(program) => self.fused(node, program, out)?,
            op => {
                return Err(unsupported(format!(
                    "op `{}` has no ONNX lowering (training-only and random ops do not export)",
                    op.name()
                )))
            }
        }
        Ok(())
    }

    fn unary(
        &mut self,
        u: UnaryOp,
        x: String,
        d: DType,
        out: Option<String>,
    ) -> Result<String, OnnxError> {
        Ok(match u.onnx() {
            OnnxUnary::Op(op_type) => self.emit(op_type, vec![x], out, vec![]),
            OnnxUnary::Log1p => {
                let one = self.scalar(d, 1.0);
                let y = self.emit("Add", vec![x, one], None, vec![]);
                self.emit("Log", vec![y], out, vec![])
            }
            OnnxUnary::Gelu { tanh } if self.opset >= 20 => {
                let approximate = if tanh { "tanh" } else { "none" };
                self.emit(
                    "Gelu",
                    vec![x],
                    out,
                    vec![attr_string("approximate", approximate)],
                )
            }
            OnnxUnary::Gelu { tanh: false } => {
                // x · ½ · (1 + erf(x / √2)), GELU's definition (ONNX has a Gelu op from 20).
                let s = self.scalar(d, std::f64::consts::FRAC_1_SQRT_2);
                let scaled = self.emit("Mul", vec![x.clone(), s], None, vec![]);
                let e = self.emit("Erf", vec![scaled], None, vec![]);
                let one = self.scalar(d, 1.0);
                let e1 = self.emit("Add", vec![e, one], None, vec![]);
                let half = self.scalar(d, 0.5);
                let h = self.emit("Mul", vec![x, half], None, vec![]);
                self.emit("Mul", vec![h, e1], out, vec![])
            }
            OnnxUnary::Gelu { tanh: true } => {
                return Err(unsupported(
                    "gelu with the tanh approximation needs opset 20 or later",
                ))
            }
            OnnxUnary::Affine { mul, add } => {
                let mut y = x;
                let last = |k: bool| if k { out.clone() } else { None };
                if mul != 1.0 || add == 0.0 {
                    let m = self.scalar(d, mul);
                    y = self.emit("Mul", vec![y, m], last(add == 0.0), vec![]);
                }
                if add != 0.0 {
                    let a = self.scalar(d, add);
                    y = self.emit("Add", vec![y, a], last(true), vec![]);
                }
                y
            }
            OnnxUnary::Pow(p) => match p {
                0.5 => self.emit("Sqrt", vec![x], out, vec![]),
                -1.0 => self.emit("Reciprocal", vec![x], out, vec![]),
                -0.5 => {
                    let s = self.emit("Sqrt", vec![x], None, vec![]);
                    self.emit("Reciprocal", vec![s], out, vec![])
                }
                2.0 => self.emit("Mul", vec![x.clone(), x], out, vec![]),
                _ => {
                    let e = self.scalar(d, p);
                    self.emit("Pow", vec![x, e], out, vec![])
                }
            },
            OnnxUnary::Clip { min, max } => {
                let lo = min.map_or(String::new(), |v| self.scalar(d, v));
                let hi = max.map_or(String::new(), |v| self.scalar(d, v));
                self.emit("Clip", vec![x, lo, hi], out, vec![])
            }
            OnnxUnary::Not => self.emit("Not", vec![x], out, vec![]),
            OnnxUnary::Minifloat(format, saturate) => {
                let (to, mode) = crate::types::onnx_minifloat(format);
                let mut attrs = vec![attr_int("to", to as i64)];
                if matches!(to, DataType::Float8e8m0) {
                    attrs.push(attr_string("round_mode", mode));
                    attrs.push(attr_int("saturate", saturate as i64));
                } else if !matches!(to, DataType::Float4e2m1) {
                    attrs.push(attr_int("saturate", saturate as i64));
                }
                let small = self.emit("Cast", vec![x], None, attrs);
                self.emit(
                    "Cast",
                    vec![small],
                    out,
                    vec![attr_int("to", onnx_dtype(d) as i64)],
                )
            }
        })
    }

    fn binary(
        &mut self,
        op: &Op,
        a: String,
        b: String,
        out: Option<String>,
    ) -> Result<String, OnnxError> {
        let op_type = match op {
            Op::Add => "Add",
            Op::Sub => "Sub",
            Op::Mul => "Mul",
            Op::Div => "Div",
            Op::Pow => "Pow",
            Op::Maximum => "Max",
            Op::Minimum => "Min",
            other => {
                return Err(unsupported(format!(
                    "binary op `{}` has no ONNX lowering",
                    other.name()
                )))
            }
        };
        Ok(self.emit(op_type, vec![a, b], out, vec![]))
    }

    fn compare(&mut self, c: CmpOp, a: String, b: String, out: Option<String>) -> String {
        let (op_type, negate) = match c {
            CmpOp::Eq => ("Equal", false),
            CmpOp::Ne => ("Equal", true),
            CmpOp::Lt => ("Less", false),
            CmpOp::Le => ("LessOrEqual", false),
            CmpOp::Gt => ("Greater", false),
            CmpOp::Ge => ("GreaterOrEqual", false),
        };
        if negate {
            let e = self.emit(op_type, vec![a, b], None, vec![]);
            self.emit("Not", vec![e], out, vec![])
        } else {
            self.emit(op_type, vec![a, b], out, vec![])
        }
    }

    /// A reduction over `axes`: the axes are an input from opset 18 (13 for ReduceSum), an
    /// attribute before.
    fn reduce(
        &mut self,
        op_type: &str,
        x: String,
        axes: &[i64],
        keepdim: bool,
        out: Option<String>,
    ) -> String {
        let axes_as_input = self.opset >= 18 || op_type == "ReduceSum";
        let keep = attr_int("keepdims", keepdim as i64);
        if axes_as_input {
            let a = self.ints(axes);
            self.emit(op_type, vec![x, a], out, vec![keep])
        } else {
            self.emit(
                op_type,
                vec![x],
                out,
                vec![keep, attr_ints("axes", axes.iter().copied())],
            )
        }
    }

    fn numel(
        &mut self,
        node: &Node,
        dims: &[usize],
        dtype: DType,
        out: Option<String>,
    ) -> Result<(), OnnxError> {
        let shape = self.dims_of(node.args[0])?;
        let counted: Vec<Dim> = dims.iter().map(|&k| shape[k]).collect();
        if counted.iter().all(|d| d.is_fixed()) {
            let n: i64 = counted.iter().map(|d| d.add).product();
            let c = self.scalar(dtype, n as f64);
            self.emit("Identity", vec![c], out, vec![]);
            return Ok(());
        }
        // The count depends on the batch: read it from the shape when the graph runs.
        let s = self.emit("Shape", vec![value_name(node.args[0])], None, vec![]);
        let idx = self.ints(&dims.iter().map(|&k| k as i64).collect::<Vec<_>>());
        let picked = self.emit("Gather", vec![s, idx], None, vec![attr_int("axis", 0)]);
        let n = self.reduce("ReduceProd", picked, &[0], false, None);
        self.cast_into(n, DType::I64, dtype, out);
        Ok(())
    }

    fn cast_into(&mut self, x: String, from: DType, to: DType, out: Option<String>) {
        let y = self.cast(x, from, to);
        self.emit("Identity", vec![y], out, vec![]);
    }

    /// The shape of value `id` as an INT64 constant for Reshape: a dim that follows the batch
    /// is -1, so the one graph serves every batch size; at most one may.
    fn shape_constant(&mut self, id: ValueId, op: &str) -> Result<String, OnnxError> {
        let dims = self.dims_of(id)?;
        if dims.iter().filter(|d| !d.is_fixed()).count() > 1 {
            return Err(unsupported(format!(
                "{op} to a shape with several batch-dependent dims ({})",
                kiln_runtime::symbolic::shape_label(&dims)
            )));
        }
        let v: Vec<i64> = dims
            .iter()
            .map(|d| if d.is_fixed() { d.add } else { -1 })
            .collect();
        if v.contains(&0) {
            return Err(unsupported(format!("{op} to a shape with a zero dim")));
        }
        Ok(self.ints(&v))
    }

    fn expand(&mut self, node: &Node, out: Option<String>) -> Result<(), OnnxError> {
        let target = self.dims_of(node.id)?;
        let input = self.dims_of(node.args[0])?;
        let offset = target.len() - input.len();
        let mut v = Vec::with_capacity(target.len());
        for (k, t) in target.iter().enumerate() {
            if t.is_fixed() {
                v.push(t.add);
            } else if k >= offset && input[k - offset] == *t {
                v.push(1); // the input already has this batch-dependent size: broadcast keeps it
            } else {
                return Err(unsupported(format!(
                    "expand of {} to the batch-dependent shape {}",
                    kiln_runtime::symbolic::shape_label(&input),
                    kiln_runtime::symbolic::shape_label(&target)
                )));
            }
        }
        let shape = self.ints(&v);
        self.emit("Expand", vec![value_name(node.args[0]), shape], out, vec![]);
        Ok(())
    }

    fn slice(
        &mut self,
        node: &Node,
        dim: usize,
        start: usize,
        len: usize,
        step: usize,
        out: Option<String>,
    ) -> Result<(), OnnxError> {
        let input = self.dims_of(node.args[0])?;
        if !input[dim].is_fixed() {
            return Err(unsupported(format!(
                "slice along the batch-dependent dim {dim} of {}",
                kiln_runtime::symbolic::shape_label(&input)
            )));
        }
        let end = if len == 0 {
            start
        } else {
            start + (len - 1) * step + 1
        };
        let starts = self.ints(&[start as i64]);
        let ends = self.ints(&[end as i64]);
        let axes = self.ints(&[dim as i64]);
        let steps = self.ints(&[step as i64]);
        self.emit(
            "Slice",
            vec![value_name(node.args[0]), starts, ends, axes, steps],
            out,
            vec![],
        );
        Ok(())
    }

    fn matmul(&mut self, node: &Node, act: Option<Activation>) -> Result<(), OnnxError> {
        let d = node.dtype;
        let (a, b) = (self.arg(node, 0, d), self.arg(node, 1, d));
        let last = |done: bool| {
            if done {
                Some(value_name(node.id))
            } else {
                None
            }
        };
        let has_bias = node.args.len() == 3;
        let mut y = self.emit(
            "MatMul",
            vec![a, b],
            last(!has_bias && act.is_none()),
            vec![],
        );
        if has_bias {
            let bias = self.arg(node, 2, d);
            y = self.emit("Add", vec![y, bias], last(act.is_none()), vec![]);
        }
        if let Some(act) = act {
            let u = match act {
                Activation::Relu => UnaryOp::Relu,
                Activation::Gelu { tanh } => UnaryOp::Gelu { tanh },
            };
            self.unary(u, y, d, last(true))?;
        }
        Ok(())
    }

    /// im2col as a grouped convolution with one-hot kernels (ONNX has no unfold op): output
    /// channel `c·K + p` of group `c` copies kernel position `p` of input channel `c`, the
    /// order `Unfold` writes; then the spatial dims are flattened.
    #[allow(clippy::too_many_arguments)]
    fn unfold(
        &mut self,
        node: &Node,
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 2],
        dilation: [usize; 2],
        pad_value: f64,
        out: Option<String>,
    ) -> Result<(), OnnxError> {
        if pad_value != 0.0 && padding != [0, 0] {
            return Err(unsupported(format!(
                "unfold padded with {pad_value} (only 0 exports)"
            )));
        }
        let d = node.dtype;
        let channels = self.dims_of(node.args[0])?[1];
        if !channels.is_fixed() {
            return Err(unsupported("unfold over a batch-dependent channel dim"));
        }
        let (c, k) = (channels.add as usize, kernel[0] * kernel[1]);
        // Element (c·K + p, 0, q) is 1 where q = p: per channel, a K×K identity.
        let weight = encode(
            d,
            (0..c * k * k).map(|i| (i % k == (i / k) % k) as u8 as f64),
        );
        let w = self.constant(None, d, &[c * k, 1, kernel[0], kernel[1]], weight);
        let attrs = vec![
            attr_ints("kernel_shape", kernel.map(|v| v as i64)),
            attr_ints("strides", stride.map(|v| v as i64)),
            attr_ints("pads", pads(padding)),
            attr_ints("dilations", dilation.map(|v| v as i64)),
            attr_int("group", c as i64),
        ];
        let x = self.arg(node, 0, d);
        let columns = self.emit("Conv", vec![x, w], None, attrs);
        let shape = self.shape_constant(node.id, "unfold")?;
        self.emit("Reshape", vec![columns, shape], out, vec![]);
        Ok(())
    }

    fn layer_norm(&mut self, node: &Node, eps: f64, out: Option<String>) -> Result<(), OnnxError> {
        let d = node.dtype;
        let x = self.arg(node, 0, d);
        let (scale, bias) = if node.args.len() == 3 {
            (self.arg(node, 1, d), self.arg(node, 2, d))
        } else {
            let last = *self
                .dims_of(node.args[0])?
                .last()
                .expect("layer norm of rank ≥ 1");
            if !last.is_fixed() {
                return Err(unsupported("layer norm over a batch-dependent dim"));
            }
            let n = last.add as usize;
            let ones = encode(d, std::iter::repeat_n(1.0, n));
            let zeros = encode(d, std::iter::repeat_n(0.0, n));
            (
                self.constant(None, d, &[n], ones),
                self.constant(None, d, &[n], zeros),
            )
        };
        let attrs = vec![attr_int("axis", -1), attr_float("epsilon", eps)];
        self.emit("LayerNormalization", vec![x, scale, bias], out, attrs);
        Ok(())
    }

    /// `softmax(scale · q kᵀ (+ causal mask)) v` in standard ops.
    fn attention(
        &mut self,
        node: &Node,
        scale: f64,
        causal: bool,
        out: Option<String>,
    ) -> Result<(), OnnxError> {
        let d = node.dtype;
        let (q, k, v) = (
            self.arg(node, 0, d),
            self.arg(node, 1, d),
            self.arg(node, 2, d),
        );
        let rank = self.dims_of(node.args[1])?.len() as i64;
        let perm: Vec<i64> = (0..rank - 2).chain([rank - 1, rank - 2]).collect();
        let kt = self.emit("Transpose", vec![k], None, vec![attr_ints("perm", perm)]);
        let scores = self.emit("MatMul", vec![q, kt], None, vec![]);
        let s = self.scalar(d, scale);
        let mut scores = self.emit("Mul", vec![scores, s], None, vec![]);
        if causal {
            let t = self.dims_of(node.args[0])?[rank as usize - 2];
            if !t.is_fixed() {
                return Err(unsupported(
                    "causal attention over a batch-dependent sequence",
                ));
            }
            let t = t.add as usize;
            let mask = encode(
                d,
                (0..t * t).map(|i| {
                    if i % t > i / t {
                        f64::NEG_INFINITY
                    } else {
                        0.0
                    }
                }),
            );
            let m = self.constant(None, d, &[t, t], mask);
            scores = self.emit("Add", vec![scores, m], None, vec![]);
        }
        let p = self.emit("Softmax", vec![scores], None, vec![attr_int("axis", -1)]);
        self.emit("MatMul", vec![p, v], out, vec![]);
        Ok(())
    }

    /// A fused chain as its steps, one node each (register `r` named per step).
    fn fused(
        &mut self,
        node: &Node,
        program: &FusedProgram,
        out: Option<String>,
    ) -> Result<(), OnnxError> {
        if !program.stores.is_empty() {
            return Err(unsupported(
                "a fused op that writes its inputs (an optimizer step)",
            ));
        }
        let d = node.dtype;
        let mut regs: Vec<String> = (0..node.args.len()).map(|k| self.arg(node, k, d)).collect();
        let n_steps = program.steps.len();
        for (k, step) in program.steps.iter().enumerate() {
            let is_last = k + 1 == n_steps && program.reduce.is_none();
            let target = if is_last { out.clone() } else { None };
            let r = |i: u16| regs[i as usize].clone();
            let y = match step {
                FusedStep::Unary { op, x } => self.unary(*op, r(*x), d, target)?,
                FusedStep::Binary {
                    op: Op::Compare(c),
                    a,
                    b,
                } => {
                    // A comparison inside a fused chain yields 0/1 in the chain's dtype.
                    let bits = self.compare(*c, r(*a), r(*b), None);
                    let y = self.cast(bits, DType::Bool, d);
                    self.emit("Identity", vec![y], target, vec![])
                }
                FusedStep::Binary { op, a, b } => self.binary(op, r(*a), r(*b), target)?,
                FusedStep::Where { c, a, b } => {
                    let cond = self.cast(r(*c), d, DType::Bool);
                    self.emit("Where", vec![cond, r(*a), r(*b)], target, vec![])
                }
                FusedStep::Copy { x } => self.emit("Identity", vec![r(*x)], target, vec![]),
            };
            regs.push(y);
        }
        if let Some(reduce) = &program.reduce {
            let axes: Vec<i64> = reduce.dims.iter().map(|&a| a as i64).collect();
            let last = regs.last().expect("a fused program has steps").clone();
            self.reduce("ReduceSum", last, &axes, reduce.keepdim, out);
        }
        Ok(())
    }
}

/// ONNX pads: begin of each spatial dim, then end of each.
fn pads(p: [usize; 2]) -> [i64; 4] {
    [p[0] as i64, p[1] as i64, p[0] as i64, p[1] as i64]
}

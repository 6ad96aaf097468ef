//! The subset of TensorFlow's `Event` / `Summary` protobuf messages that TensorBoard event
//! files need, written by hand with `prost` derives (no `.proto` code generation).
//!
//! Field numbers and types follow `tensorflow/core/util/event.proto`,
//! `tensorflow/core/framework/summary.proto`, `tensor.proto` and `tensor_shape.proto`.
//! Only the fields Kiln writes or reads are declared; unknown fields in files written by
//! other tools are skipped on decode, as protobuf requires.

/// `tensorflow.DataType` value of a string tensor (`DT_STRING`).
pub const DT_STRING: i32 = 7;

/// The `file_version` written in the first event of every file.
pub const FILE_VERSION: &str = "brain.Event:2";

/// Name of TensorBoard's text plugin (`plugin_data.plugin_name` of text summaries).
pub const TEXT_PLUGIN_NAME: &str = "text";

/// One record of an event file (`tensorflow.Event`).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Event {
    /// Seconds since the Unix epoch when the event was written.
    #[prost(double, tag = "1")]
    pub wall_time: f64,
    /// Global step of the event.
    #[prost(int64, tag = "2")]
    pub step: i64,
    /// The payload of the event.
    #[prost(oneof = "What", tags = "3, 5")]
    pub what: Option<What>,
}

/// The payload of an [`Event`] (`Event.what`); only the variants Kiln uses.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum What {
    /// File format version, e.g. [`FILE_VERSION`]; carried by the first event of a file.
    #[prost(string, tag = "3")]
    FileVersion(String),
    /// A set of summary values (scalars, text, ...).
    #[prost(message, tag = "5")]
    Summary(Summary),
}

/// A set of tagged values logged at one step (`tensorflow.Summary`).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Summary {
    /// The values.
    #[prost(message, repeated, tag = "1")]
    pub value: Vec<SummaryValue>,
}

/// One tagged value of a [`Summary`] (`tensorflow.Summary.Value`).
#[derive(Clone, PartialEq, prost::Message)]
pub struct SummaryValue {
    /// The tag (series name) shown by TensorBoard.
    #[prost(string, tag = "1")]
    pub tag: String,
    /// The value itself.
    #[prost(oneof = "Value", tags = "2, 8")]
    pub value: Option<Value>,
    /// Metadata, e.g. which TensorBoard plugin renders a tensor value.
    // Declared after `value` so that prost encodes fields in field-number order, as the
    // C++ and Python protobuf libraries do (byte-identical to PyTorch's files).
    #[prost(message, optional, tag = "9")]
    pub metadata: Option<SummaryMetadata>,
}

/// The value of a [`SummaryValue`] (`Summary.Value.value`); only the variants Kiln uses.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum Value {
    /// A scalar, stored as a 32-bit float (as PyTorch's `add_scalar` writes it).
    #[prost(float, tag = "2")]
    SimpleValue(f32),
    /// A tensor, e.g. the string tensor of a text summary.
    #[prost(message, tag = "8")]
    Tensor(TensorProto),
}

/// Metadata of a summary value (`tensorflow.SummaryMetadata`).
#[derive(Clone, PartialEq, prost::Message)]
pub struct SummaryMetadata {
    /// The plugin that renders this value.
    #[prost(message, optional, tag = "1")]
    pub plugin_data: Option<PluginData>,
    /// Display name (unused by Kiln).
    #[prost(string, tag = "2")]
    pub display_name: String,
    /// Description (unused by Kiln).
    #[prost(string, tag = "3")]
    pub summary_description: String,
}

/// Plugin information of a summary value (`tensorflow.SummaryMetadata.PluginData`).
#[derive(Clone, PartialEq, prost::Message)]
pub struct PluginData {
    /// Plugin name, e.g. [`TEXT_PLUGIN_NAME`].
    #[prost(string, tag = "1")]
    pub plugin_name: String,
    /// Plugin-specific serialized content (empty for text version 0).
    #[prost(bytes = "vec", tag = "2")]
    pub content: Vec<u8>,
}

/// A tensor value (`tensorflow.TensorProto`); only the fields Kiln uses.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TensorProto {
    /// Element type (`tensorflow.DataType`), e.g. [`DT_STRING`].
    #[prost(int32, tag = "1")]
    pub dtype: i32,
    /// Shape of the tensor.
    #[prost(message, optional, tag = "2")]
    pub tensor_shape: Option<TensorShapeProto>,
    /// Elements of a `DT_STRING` tensor.
    #[prost(bytes = "vec", repeated, tag = "8")]
    pub string_val: Vec<Vec<u8>>,
}

/// The shape of a tensor (`tensorflow.TensorShapeProto`).
#[derive(Clone, PartialEq, prost::Message)]
pub struct TensorShapeProto {
    /// Dimensions, outermost first.
    #[prost(message, repeated, tag = "2")]
    pub dim: Vec<Dim>,
}

/// One dimension of a [`TensorShapeProto`] (`tensorflow.TensorShapeProto.Dim`).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Dim {
    /// Size of the dimension.
    #[prost(int64, tag = "1")]
    pub size: i64,
}

impl Event {
    /// The scalar values of this event as `(tag, value)` pairs (empty if it has none).
    pub fn scalars(&self) -> Vec<(&str, f32)> {
        self.summary_values()
            .filter_map(|v| match v.value {
                Some(Value::SimpleValue(x)) => Some((v.tag.as_str(), x)),
                _ => None,
            })
            .collect()
    }

    /// The text values of this event as `(tag, text)` pairs: values rendered by the text
    /// plugin whose tensor holds one UTF-8 string (empty if it has none).
    pub fn texts(&self) -> Vec<(&str, String)> {
        self.summary_values()
            .filter(|v| {
                v.metadata
                    .as_ref()
                    .and_then(|m| m.plugin_data.as_ref())
                    .is_some_and(|p| p.plugin_name == TEXT_PLUGIN_NAME)
            })
            .filter_map(|v| match &v.value {
                Some(Value::Tensor(t)) if t.dtype == DT_STRING && t.string_val.len() == 1 => {
                    Some((
                        v.tag.as_str(),
                        String::from_utf8_lossy(&t.string_val[0]).into_owned(),
                    ))
                }
                _ => None,
            })
            .collect()
    }

    fn summary_values(&self) -> impl Iterator<Item = &SummaryValue> {
        match &self.what {
            Some(What::Summary(s)) => s.value.iter(),
            _ => [].iter(),
        }
    }
}

//! A node's attributes, read by name with their ONNX types checked.

use super::builder::R;
use crate::proto::attribute_proto::AttributeType;
use crate::proto::{AttributeProto, NodeProto, TensorProto};

/// The attributes of one node.
pub(crate) struct Attrs<'a> {
    list: &'a [AttributeProto],
}

impl<'a> Attrs<'a> {
    /// The attributes of `node`.
    pub fn of(node: &'a NodeProto) -> Attrs<'a> {
        Attrs {
            list: &node.attribute,
        }
    }

    /// Refuses an attribute the importer does not know for this op (it might change the
    /// result), or one that refers to a function's attribute.
    pub fn only(&self, known: &[&str]) -> R<()> {
        for a in self.list {
            if a.ref_attr_name.is_some() {
                return Err(format!(
                    "attribute {} refers to a function attribute",
                    a.name()
                ));
            }
            if !known.contains(&a.name()) {
                return Err(format!("attribute {} is not supported", a.name()));
            }
        }
        Ok(())
    }

    fn get(&self, name: &str, ty: AttributeType) -> R<Option<&'a AttributeProto>> {
        match self.list.iter().find(|a| a.name() == name) {
            None => Ok(None),
            // Type UNDEFINED: writers of IR version < 3 left it out; read the field asked for.
            Some(a) if a.r#type() == ty || a.r#type() == AttributeType::Undefined => Ok(Some(a)),
            Some(a) => Err(format!(
                "attribute {name} is {}, expected {}",
                a.r#type().as_str_name(),
                ty.as_str_name()
            )),
        }
    }

    /// True when the node sets `name`.
    pub fn has(&self, name: &str) -> bool {
        self.list.iter().any(|a| a.name() == name)
    }

    /// An integer attribute.
    pub fn int(&self, name: &str) -> R<Option<i64>> {
        Ok(self.get(name, AttributeType::Int)?.map(|a| a.i()))
    }

    /// An integer attribute, or `default`.
    pub fn int_or(&self, name: &str, default: i64) -> R<i64> {
        Ok(self.int(name)?.unwrap_or(default))
    }

    /// A float attribute, or `default`.
    pub fn float_or(&self, name: &str, default: f32) -> R<f32> {
        Ok(self
            .get(name, AttributeType::Float)?
            .map_or(default, |a| a.f()))
    }

    /// A list of integers.
    pub fn ints(&self, name: &str) -> R<Option<Vec<i64>>> {
        Ok(self.get(name, AttributeType::Ints)?.map(|a| a.ints.clone()))
    }

    /// A list of floats.
    pub fn floats(&self, name: &str) -> R<Option<Vec<f32>>> {
        Ok(self
            .get(name, AttributeType::Floats)?
            .map(|a| a.floats.clone()))
    }

    /// A string attribute.
    pub fn string(&self, name: &str) -> R<Option<String>> {
        Ok(self
            .get(name, AttributeType::String)?
            .map(|a| String::from_utf8_lossy(a.s()).into_owned()))
    }

    /// A list of strings.
    pub fn string_list(&self, name: &str) -> R<Option<Vec<String>>> {
        Ok(self.get(name, AttributeType::Strings)?.map(|a| {
            a.strings
                .iter()
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect()
        }))
    }

    /// A graph attribute (a control-flow op's body or branch).
    pub fn graph(&self, name: &str) -> R<Option<&'a crate::proto::GraphProto>> {
        Ok(self
            .get(name, AttributeType::Graph)?
            .and_then(|a| a.g.as_ref()))
    }

    /// A tensor attribute.
    pub fn tensor(&self, name: &str) -> R<Option<&'a TensorProto>> {
        Ok(self
            .get(name, AttributeType::Tensor)?
            .and_then(|a| a.t.as_ref()))
    }
}

//! kiln-derive: `#[derive(Module)]` for structs of layers.
//!
//! Fields are submodules by default (any type implementing `ModuleBase`, including `Vec<M>`
//! and `Option<M>`); `#[param]` marks a `Tensor` field as a parameter, `#[buffer]` as a
//! buffer, and `#[module(skip)]` leaves a field out. Names follow the field names, so a field
//! `fc1: Linear` yields `fc1.weight` and `fc1.bias`, as in PyTorch.
//!
//! Layering: a proc-macro crate; it depends on no Kiln crate (the code it generates names the
//! `nn` items of `kiln-nn` or of the facade, whichever the using crate depends on).
//!
//! Guide: *Building models* (`docs/src/models.md`).

#![deny(missing_docs)]

use proc_macro::TokenStream;
use quote::quote;
use syn::{parse_macro_input, Data, DeriveInput, Fields};

enum Role {
    Child,
    Param,
    Buffer,
    Skip,
}

fn role(field: &syn::Field) -> syn::Result<Role> {
    let mut r = Role::Child;
    for attr in &field.attrs {
        if attr.path().is_ident("param") {
            r = Role::Param;
        } else if attr.path().is_ident("buffer") {
            r = Role::Buffer;
        } else if attr.path().is_ident("module") {
            attr.parse_nested_meta(|meta| {
                if meta.path.is_ident("skip") {
                    r = Role::Skip;
                    Ok(())
                } else {
                    Err(meta.error("expected `skip`"))
                }
            })?;
        }
    }
    Ok(r)
}

/// Implements `kiln_nn::ModuleBase` (parameters, buffers, submodules, train/eval, state_dict)
/// for a struct, and `Debug` as the module tree (`println!("{model:?}")` prints what PyTorch's
/// `print(model)` does; do not also derive `Debug`). Write `impl Module for T { fn forward(..) }`
/// yourself.
#[proc_macro_derive(Module, attributes(param, buffer, module))]
pub fn derive_module(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    match expand(&input) {
        Ok(ts) => ts.into(),
        Err(e) => e.to_compile_error().into(),
    }
}

/// Path to kiln-nn as the user's crate sees it: `kiln_nn` (also inside kiln-nn itself), or
/// `kiln::nn` through the facade.
fn nn_path() -> proc_macro2::TokenStream {
    use proc_macro_crate::{crate_name, FoundCrate};
    match crate_name("kiln-nn") {
        // kiln-nn declares `extern crate self as kiln_nn`, so this path works in its lib,
        // tests and examples alike.
        Ok(FoundCrate::Itself) => quote!(::kiln_nn),
        Ok(FoundCrate::Name(n)) => {
            let id = syn::Ident::new(&n, proc_macro2::Span::call_site());
            quote!(::#id)
        }
        Err(_) => match crate_name("kiln") {
            Ok(FoundCrate::Name(n)) => {
                let id = syn::Ident::new(&n, proc_macro2::Span::call_site());
                quote!(::#id::nn)
            }
            _ => quote!(::kiln::nn),
        },
    }
}

fn expand(input: &DeriveInput) -> syn::Result<proc_macro2::TokenStream> {
    let name = &input.ident;
    let nn = nn_path();
    let (impl_g, ty_g, where_c) = input.generics.split_for_impl();
    let Data::Struct(data) = &input.data else {
        return Err(syn::Error::new_spanned(
            name,
            "#[derive(Module)] supports structs only",
        ));
    };
    let mut children = Vec::new();
    let mut params = Vec::new();
    let mut buffers = Vec::new();
    let members: Vec<(syn::Member, String, &syn::Field)> = match &data.fields {
        Fields::Named(f) => f
            .named
            .iter()
            .map(|fl| {
                let id = fl.ident.clone().unwrap();
                let s = id.to_string();
                (
                    syn::Member::Named(id),
                    s.trim_start_matches("r#").to_string(),
                    fl,
                )
            })
            .collect(),
        Fields::Unnamed(f) => f
            .unnamed
            .iter()
            .enumerate()
            .map(|(i, fl)| (syn::Member::Unnamed(i.into()), i.to_string(), fl))
            .collect(),
        Fields::Unit => Vec::new(),
    };
    for (member, label, field) in &members {
        match role(field)? {
            Role::Child => children
                .push(quote! { (#label.to_string(), &self.#member as &dyn #nn::ModuleBase) }),
            Role::Param => params.push(quote! { (#label.to_string(), self.#member.clone()) }),
            Role::Buffer => buffers.push(quote! { (#label.to_string(), self.#member.clone()) }),
            Role::Skip => {}
        }
    }
    Ok(quote! {
        impl #impl_g #nn::ModuleBase for #name #ty_g #where_c {
            fn children(&self) -> ::std::vec::Vec<(::std::string::String, &dyn #nn::ModuleBase)> {
                vec![#(#children),*]
            }
            fn own_parameters(&self) -> ::std::vec::Vec<(::std::string::String, #nn::Tensor)> {
                vec![#(#params),*]
            }
            fn own_buffers(&self) -> ::std::vec::Vec<(::std::string::String, #nn::Tensor)> {
                vec![#(#buffers),*]
            }
            fn as_dyn(&self) -> &dyn #nn::ModuleBase {
                self
            }
        }
        // `println!("{model:?}")` prints the module tree, as `print(model)` does in PyTorch.
        impl #impl_g ::std::fmt::Debug for #name #ty_g #where_c {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(&#nn::ModuleBase::tree(self))
            }
        }
    })
}

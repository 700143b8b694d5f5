//! `#[derive(Module)]`: writes `Module::visit` from a struct's fields, so that no weight can
//! be left out of the optimizer, checkpoints, `to_device` and freezing by a forgotten line.
//!
//! Every named field is visited through `plies_nn::visitable::Visitable`, under its own name:
//! a `Tensor` is a parameter, a `Mode` a train/eval flag, a `Mutex<Rng>` a random generator,
//! any `Module` a child, `Option<T>` when present, `Vec<T>` numbered (`blocks.3`). A field of
//! another type does not compile until it is marked:
//!
//! - `#[module(skip)]`: not part of the module (sizes, configuration, caches);
//! - `#[module(rename = "weight_ih_l0")]`: visited under another name;
//! - `#[module(layer = N)]`: the child forms layer `N` (see `Scope::layer`);
//! - `#[module(layers_from = N)]` on a `Vec`: element `i` forms layer `N + i`.

use proc_macro::TokenStream;
use quote::quote;
use syn::{parse_macro_input, Data, DeriveInput, Fields, LitInt, LitStr};

#[derive(Default)]
struct FieldAttrs {
    skip: bool,
    rename: Option<String>,
    layer: Option<LitInt>,
    layers_from: Option<LitInt>,
}

fn field_attrs(field: &syn::Field) -> syn::Result<FieldAttrs> {
    let mut a = FieldAttrs::default();
    for attr in field.attrs.iter().filter(|a| a.path().is_ident("module")) {
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("skip") {
                a.skip = true;
            } else if meta.path.is_ident("rename") {
                a.rename = Some(meta.value()?.parse::<LitStr>()?.value());
            } else if meta.path.is_ident("layer") {
                a.layer = Some(meta.value()?.parse()?);
            } else if meta.path.is_ident("layers_from") {
                a.layers_from = Some(meta.value()?.parse()?);
            } else {
                return Err(meta.error("expected `skip`, `rename = \"..\"`, `layer = N` or `layers_from = N`"));
            }
            Ok(())
        })?;
    }
    if a.layer.is_some() && a.layers_from.is_some() {
        return Err(syn::Error::new_spanned(field, "`layer` and `layers_from` exclude each other"));
    }
    Ok(a)
}

#[proc_macro_derive(Module, attributes(module))]
pub fn derive_module(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    match expand(&input) {
        Ok(t) => t.into(),
        Err(e) => e.to_compile_error().into(),
    }
}

fn expand(input: &DeriveInput) -> syn::Result<proc_macro2::TokenStream> {
    let name = &input.ident;
    let Data::Struct(data) = &input.data else {
        return Err(syn::Error::new_spanned(name, "#[derive(Module)] needs a struct with named fields"));
    };
    let Fields::Named(fields) = &data.fields else {
        return Err(syn::Error::new_spanned(name, "#[derive(Module)] needs a struct with named fields"));
    };
    let mut lines = Vec::new();
    for f in &fields.named {
        let a = field_attrs(f)?;
        if a.skip {
            continue;
        }
        let ident = f.ident.as_ref().expect("named field");
        let key = a.rename.unwrap_or_else(|| ident.to_string());
        lines.push(match (a.layer, a.layers_from) {
            (Some(n), _) => quote! { s.layer(#key, #n, &self.#ident); },
            (_, Some(n)) => quote! {
                for (i, m) in self.#ident.iter().enumerate() {
                    s.layer(&format!("{}.{}", #key, i), #n + i, m);
                }
            },
            _ => quote! { ::plies_nn::visitable::Visitable::visit_as(&self.#ident, #key, s); },
        });
    }
    let (impl_g, ty_g, where_g) = input.generics.split_for_impl();
    Ok(quote! {
        impl #impl_g ::plies_nn::module::Module for #name #ty_g #where_g {
            fn visit(&self, s: &mut ::plies_nn::module::Scope<'_>) {
                #(#lines)*
            }
        }
    })
}

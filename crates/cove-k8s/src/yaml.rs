//! Rendered objects as multi-document YAML (`---` between documents).

use crate::Object;

/// The objects as one multi-document YAML text, in the order given.
pub fn documents(objects: &[Object]) -> String {
    let mut out = String::new();
    for (i, o) in objects.iter().enumerate() {
        if i > 0 {
            out.push_str("---\n");
        }
        out.push_str(&cove_spec::yaml_out::to_yaml(&o.to_json()));
    }
    out
}

/// A file name for one object in `-o DIR`: `NN-kind-name.yaml`, numbered in
/// apply order so that `kubectl apply -f DIR` applies them in that order.
pub fn file_name(index: usize, o: &Object) -> String {
    format!(
        "{index:03}-{}-{}.yaml",
        o.kind().to_ascii_lowercase(),
        o.name()
    )
}

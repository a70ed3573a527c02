//! Board rule files (`rules/*.toml`): the small vocabulary the files combine
//! (subjects, events, filters, standards, recipients) and the resolved rules
//! in `model`, reading files with `extends` and versions in `load`, and
//! validation with `file:line:column` messages in `validate`. The numbers
//! and sources live only in the files.

mod load;
mod model;
mod validate;

pub use load::*;
pub use model::*;

/// The rule files shipped with cpwatch, used when no rules directory is given.
pub const BUILT_IN: &[(&str, &str)] = &[
    (
        "working-together-2010.toml",
        include_str!("../../../rules/working-together-2010.toml"),
    ),
    (
        "pan-dorset.toml",
        include_str!("../../../rules/pan-dorset.toml"),
    ),
    (
        "hampshire-4lscb.toml",
        include_str!("../../../rules/hampshire-4lscb.toml"),
    ),
    (
        "barnsley.toml",
        include_str!("../../../rules/barnsley.toml"),
    ),
    (
        "cwm-taf-morgannwg.toml",
        include_str!("../../../rules/cwm-taf-morgannwg.toml"),
    ),
    ("bolton.toml", include_str!("../../../rules/bolton.toml")),
];

use thiserror::Error;

/// Invalid mixture settings.
#[derive(Debug, Error, PartialEq)]
pub enum OpsError {
    /// A field of [`UnMixConfig`](crate::UnMixConfig) is out of range. The message names the
    /// field as this crate spells it; an application that reads the config from a file can map
    /// `field` onto its own key.
    #[error("UnMixConfig.{field} = {value}: {expected}")]
    Setting {
        /// The field of `UnMixConfig`.
        field: &'static str,
        /// The value given.
        value: String,
        /// What is allowed.
        expected: &'static str,
    },
}

use thiserror::Error;

/// Invalid mixture settings.
#[derive(Debug, Error, PartialEq)]
pub enum OpsError {
    /// A field of a settings type ([`UnMixConfig`](crate::UnMixConfig),
    /// [`ImageMixtureConfig`](crate::ImageMixtureConfig)) is out of range. The message names
    /// the type and field as this crate spells them; an application that reads the config from
    /// a file can map `field` onto its own key.
    #[error("{owner}.{field} = {value}: {expected}")]
    Setting {
        /// The settings type.
        owner: &'static str,
        /// Its field.
        field: &'static str,
        /// The value given.
        value: String,
        /// What is allowed.
        expected: &'static str,
    },
}

//! Errors: [`TexmlError`] when a value or document is built, [`ParseError`] when one is read.

use thiserror::Error;

/// A value that TeXML does not accept. Raised when a document is built, never clamped.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TexmlError {
    /// A number outside the range Telnyx documents for the attribute.
    #[error("{what} must be between {min} and {max}, got {value}")]
    OutOfRange {
        /// The attribute, e.g. `Dial timeout`.
        what: &'static str,
        /// The rejected value.
        value: i64,
        /// Smallest accepted value.
        min: i64,
        /// Largest accepted value.
        max: i64,
    },
    /// A character that XML 1.0 forbids (most C0 controls, U+FFFE, U+FFFF).
    ///
    /// Documents never carry such characters: they are rejected here, never dropped or
    /// emitted, so what the caller hears is exactly what was written.
    #[error("{what} contains U+{code:04X} at character {position}, which XML 1.0 does not allow")]
    ForbiddenCharacter {
        /// Which text or attribute.
        what: &'static str,
        /// The code point.
        code: u32,
        /// Its index, counted in characters.
        position: usize,
    },
    /// An attribute that must be an absolute `http`/`https` URL is not one.
    #[error("{what} must be an absolute http(s) URL: {reason}")]
    InvalidUrl {
        /// Which attribute.
        what: &'static str,
        /// Why it was refused.
        reason: String,
    },
    /// Any other malformed value (empty text, a digit set with other characters, ...).
    #[error("{what} is invalid: {reason}")]
    InvalidValue {
        /// Which attribute or body.
        what: &'static str,
        /// Why it was refused.
        reason: String,
    },
    /// A `<Dial>` without a single noun would ring nobody.
    #[error("a <Dial> needs at least one noun (Number, Sip, Queue or Conference)")]
    EmptyDial,
}

/// Why a document could not be read back.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ParseError {
    /// Not well-formed XML.
    #[error("not well-formed XML: {0}")]
    Xml(String),
    /// The root element is not `<Response>`.
    #[error("the root element must be <Response>, found <{0}>")]
    NotAResponse(String),
    /// An element that is not a TeXML verb or noun where it appears (strict mode).
    #[error("<{name}> is not allowed inside <{parent}>")]
    UnknownElement {
        /// The enclosing element.
        parent: String,
        /// The unexpected element.
        name: String,
    },
    /// An attribute this model does not know (strict mode).
    #[error("<{element}> has no attribute {attribute:?}")]
    UnknownAttribute {
        /// The element carrying it.
        element: String,
        /// The attribute name.
        attribute: String,
    },
    /// An attribute or body whose value TeXML does not accept.
    #[error("<{element}> {attribute}: {source}")]
    InvalidValue {
        /// The element.
        element: String,
        /// The attribute, or `body` for the element's text.
        attribute: String,
        /// What was wrong with the value.
        source: TexmlError,
    },
    /// A required attribute or body is missing.
    #[error("<{element}> needs {what}")]
    Missing {
        /// The element.
        element: String,
        /// What is missing.
        what: &'static str,
    },
    /// Text where only elements may appear (strict mode).
    #[error("<{element}> may not contain text")]
    UnexpectedText {
        /// The element.
        element: String,
    },
}

//! A plain element tree between the typed model and XML text, written and read with xml-rs.
//!
//! The writer escapes by hand (xml-rs escaping is switched off) so that every character
//! survives a round trip: `\r` in text and `\t`, `\n`, `\r` in attributes become character
//! references, which XML parsers would otherwise normalise away.

use std::borrow::Cow;
use std::io::Cursor;

use xml::EmitterConfig;
use xml::ParserConfig;
use xml::reader::XmlEvent as ReadEvent;
use xml::writer::XmlEvent as WriteEvent;

use crate::error::ParseError;

/// One element: its name, attributes in document order, text and child elements.
///
/// `text` is the concatenated character data directly inside the element; TeXML never mixes
/// text and child elements, so their relative order is not kept.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Element {
    /// Element name, e.g. `Dial`.
    pub name: String,
    /// Attributes in document order.
    pub attributes: Vec<(String, String)>,
    /// Character data directly inside this element.
    pub text: String,
    /// Child elements in order.
    pub children: Vec<Element>,
}

impl Element {
    /// An element without attributes, text or children.
    #[must_use]
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            ..Self::default()
        }
    }

    /// The value of attribute `name`, if present.
    #[must_use]
    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Number of elements in this subtree, this one included.
    #[must_use]
    pub fn count(&self) -> usize {
        1 + self.children.iter().map(Element::count).sum::<usize>()
    }
}

/// Escapes character data: `&`, `<`, `>` and `\r`. Borrows when nothing needs escaping.
#[must_use]
pub fn escape_text(s: &str) -> Cow<'_, str> {
    if !s.contains(['&', '<', '>', '\r']) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\r' => out.push_str("&#xD;"),
            _ => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Escapes an attribute value for double quotes, including the whitespace characters that
/// attribute-value normalisation would turn into spaces. Borrows when nothing needs escaping.
#[must_use]
pub fn escape_attribute(s: &str) -> Cow<'_, str> {
    if !s.contains(['&', '<', '>', '"', '\'', '\t', '\n', '\r']) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' => out.push_str("&#x9;"),
            '\n' => out.push_str("&#xA;"),
            '\r' => out.push_str("&#xD;"),
            _ => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Writes any element tree as a UTF-8 document with an XML declaration (the typed model has
/// its own streaming writer; this one serves tools and tests that work on trees).
///
/// The caller guarantees that names are valid XML names and values hold only XML
/// characters (the typed model does); the output is then always well-formed.
#[must_use]
pub fn write_document(root: &Element, pretty: bool) -> String {
    let mut buffer = Vec::with_capacity(256);
    let mut config = EmitterConfig::new();
    config.perform_indent = pretty;
    config.perform_escaping = false;
    config.write_document_declaration = true;
    config.normalize_empty_elements = true;
    config.pad_self_closing = false;
    let mut writer = config.create_writer(&mut buffer);
    // Writing to a Vec cannot fail, and the model only produces balanced, valid names;
    // an error here would be a bug in this module, so it is surfaced as a marker comment
    // instead of a panic.
    if let Err(e) = write_element(&mut writer, root) {
        return format!("<!-- texml writer error: {e} -->");
    }
    String::from_utf8(buffer).unwrap_or_default()
}

fn write_element<W: std::io::Write>(
    writer: &mut xml::EventWriter<W>,
    el: &Element,
) -> Result<(), xml::writer::Error> {
    let escaped: Vec<(&str, Cow<'_, str>)> = el
        .attributes
        .iter()
        .map(|(n, v)| (n.as_str(), escape_attribute(v)))
        .collect();
    let mut start = WriteEvent::start_element(el.name.as_str());
    for (name, value) in &escaped {
        start = start.attr(*name, value);
    }
    writer.write(start)?;
    if !el.text.is_empty() {
        writer.write(WriteEvent::characters(&escape_text(&el.text)))?;
    }
    for child in &el.children {
        write_element(writer, child)?;
    }
    writer.write(WriteEvent::end_element())
}

/// Reads a document into its root element. Comments and processing instructions are
/// skipped; CDATA counts as text; whitespace is kept exactly.
///
/// # Errors
/// [`ParseError::Xml`] when the input is not well-formed (or uses DTDs or entities other
/// than the five predefined ones and character references).
pub fn read_document(xml: &str) -> Result<Element, ParseError> {
    let config = ParserConfig::new()
        .trim_whitespace(false)
        .whitespace_to_characters(true)
        .cdata_to_characters(true)
        .coalesce_characters(true)
        .ignore_comments(true)
        .ignore_root_level_whitespace(true);
    let reader = config.create_reader(Cursor::new(xml.as_bytes()));
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    for event in reader {
        match event.map_err(|e| ParseError::Xml(e.to_string()))? {
            ReadEvent::StartElement {
                name, attributes, ..
            } => {
                let mut el = Element::new(&qualified(&name));
                el.attributes = attributes
                    .into_iter()
                    .map(|a| (qualified(&a.name), a.value))
                    .collect();
                stack.push(el);
            }
            ReadEvent::EndElement { .. } => {
                let Some(done) = stack.pop() else {
                    return Err(ParseError::Xml("unbalanced end tag".into()));
                };
                match stack.last_mut() {
                    Some(parent) => parent.children.push(done),
                    None => root = Some(done),
                }
            }
            ReadEvent::Characters(s) | ReadEvent::Whitespace(s) | ReadEvent::CData(s) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&s);
                }
            }
            ReadEvent::Doctype { .. } => {
                return Err(ParseError::Xml(
                    "document type declarations are not accepted".into(),
                ));
            }
            _ => {}
        }
    }
    root.ok_or_else(|| ParseError::Xml("no root element".into()))
}

fn qualified(name: &xml::name::OwnedName) -> String {
    match &name.prefix {
        Some(prefix) => format!("{prefix}:{}", name.local_name),
        None => name.local_name.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attribute_whitespace_and_quotes_survive_a_round_trip() {
        let mut el = Element::new("Say");
        el.attributes
            .push(("voice".into(), "a\tb\nc\rd\"e'f<g>&".into()));
        el.text = "line1\r\nline2 ]]> <tag> &amp;".into();
        let xml = write_document(&el, false);
        let back = read_document(&xml).unwrap();
        assert_eq!(back, el);
    }

    #[test]
    fn doctype_is_refused() {
        let xml = "<?xml version=\"1.0\"?><!DOCTYPE r [<!ENTITY x \"y\">]><Response>&x;</Response>";
        assert!(read_document(xml).is_err());
    }
}

//! A small XML writer for the XML protocols' answers and errors, writing into one `String`.
//!
//! Element names come from code and are written as given; text is escaped, and characters
//! that XML 1.0 forbids are dropped (a client's parser would reject the whole document).

pub const EC2_XMLNS: &str = "http://ec2.amazonaws.com/doc/2016-11-15/";

pub(crate) const XML_DECLARATION: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";

/// Writes nested elements; `end` closes the most recently started one.
#[derive(Default)]
pub struct XmlWriter {
    out: String,
    /// Names of the open elements, back to back, so that nesting allocates nothing per element.
    open_names: String,
    /// Where each open element's name starts in `open_names`.
    open_starts: Vec<usize>,
}

/// What `c` becomes in element text: itself, an entity, or nothing.
fn escaped(c: char) -> Option<&'static str> {
    match c {
        '&' => Some("&amp;"),
        '<' => Some("&lt;"),
        '>' => Some("&gt;"),
        '"' => Some("&quot;"),
        '\'' => Some("&apos;"),
        // A literal CR would be read back as LF; the reference keeps it.
        '\r' => Some("&#xD;"),
        '\t' | '\n' => None,
        c if u32::from(c) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => Some(""),
        _ => None,
    }
}

/// Whether a byte may start a character that [`escaped`] changes: an ASCII control, markup,
/// or 0xEF, which starts U+FFFE and U+FFFF (and other characters, checked one by one).
fn needs_care(byte: u8) -> bool {
    matches!(byte, 0..=0x1F | b'&' | b'<' | b'>' | b'"' | b'\'' | 0xEF)
        && byte != b'\t'
        && byte != b'\n'
}

pub(crate) fn escape_into(out: &mut String, text: &str) {
    // Most text (IDs, names, states) has nothing to escape: copy it whole.
    if !text.bytes().any(needs_care) {
        out.push_str(text);
        return;
    }
    let mut copied_up_to = 0;
    for (at, c) in text.char_indices() {
        if let Some(replacement) = escaped(c) {
            out.push_str(&text[copied_up_to..at]);
            out.push_str(replacement);
            copied_up_to = at + c.len_utf8();
        }
    }
    out.push_str(&text[copied_up_to..]);
}

impl XmlWriter {
    pub fn new() -> XmlWriter {
        XmlWriter {
            out: String::with_capacity(1024),
            ..XmlWriter::default()
        }
    }

    /// A writer that has written the XML declaration.
    pub fn document() -> XmlWriter {
        let mut xml = XmlWriter::new();
        xml.out.push_str(XML_DECLARATION);
        xml
    }

    fn open_tag(&mut self, name: &str) {
        self.out.push('<');
        self.out.push_str(name);
        self.out.push('>');
    }

    fn close_tag(&mut self, name: &str) {
        self.out.push_str("</");
        self.out.push_str(name);
        self.out.push('>');
    }

    /// `<name>`, closed by the matching [`XmlWriter::end`].
    pub fn start(&mut self, name: &str) {
        self.open_tag(name);
        self.remember_open(name);
    }

    fn remember_open(&mut self, name: &str) {
        self.open_starts.push(self.open_names.len());
        self.open_names.push_str(name);
    }

    /// `<name xmlns="namespace">`, closed by the matching [`XmlWriter::end`].
    pub fn start_with_namespace(&mut self, name: &str, namespace: &str) {
        self.out.push('<');
        self.out.push_str(name);
        self.out.push_str(" xmlns=\"");
        escape_into(&mut self.out, namespace);
        self.out.push_str("\">");
        self.remember_open(name);
    }

    /// Closes the most recently started element (nothing if none is open).
    pub fn end(&mut self) {
        if let Some(start) = self.open_starts.pop() {
            self.out.push_str("</");
            self.out.push_str(&self.open_names[start..]);
            self.out.push('>');
            self.open_names.truncate(start);
        }
    }

    /// `<name>text</name>`
    pub fn leaf(&mut self, name: &str, text: &str) {
        self.open_tag(name);
        escape_into(&mut self.out, text);
        self.close_tag(name);
    }

    /// Closes whatever is still open and returns the document.
    pub fn finish(mut self) -> String {
        while !self.open_starts.is_empty() {
            self.end();
        }
        self.out
    }
}

/// The EC2 error envelope:
/// `<?xml?><Response><Errors><Error><Code/><Message/></Error></Errors><RequestID/></Response>`
pub fn ec2_error(code: &str, message: &str, request_id: &str) -> String {
    let mut xml = XmlWriter::document();
    xml.start("Response");
    xml.start("Errors");
    xml.start("Error");
    xml.leaf("Code", code);
    xml.leaf("Message", message);
    xml.end();
    xml.end();
    xml.leaf("RequestID", request_id);
    xml.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_escaped_documents() {
        let mut w = XmlWriter::document();
        w.start_with_namespace("DescribeRegionsResponse", EC2_XMLNS);
        w.leaf("requestId", "req-1");
        w.start("regionInfo");
        w.start("item");
        w.leaf("regionName", "a<b>&\"c'\u{1}d\u{FFFF}\r\n\té");
        w.leaf("endpoint", "e");
        w.end();
        w.start("item");
        // Left open: finish closes it.
        let xml = w.finish();
        assert_eq!(
            xml,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<DescribeRegionsResponse xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\">\
             <requestId>req-1</requestId><regionInfo><item><regionName>a&lt;b&gt;&amp;&quot;c&apos;d&#xD;\n\té</regionName>\
             <endpoint>e</endpoint></item><item></item></regionInfo></DescribeRegionsResponse>"
        );
        let error = ec2_error("AuthFailure", "no & no", "r");
        assert_eq!(
            error,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>AuthFailure</Code>\
             <Message>no &amp; no</Message></Error></Errors><RequestID>r</RequestID></Response>"
        );
    }

    proptest::proptest! {
        /// Whatever the text, the document is well formed and gives the text back.
        #[test]
        fn any_text_round_trips(text in "\\PC*|.*") {
            let mut xml = XmlWriter::new();
            xml.leaf("a", &text);
            let written = xml.finish();
            let inner = &written[3..written.len() - 4];
            proptest::prop_assert!(!inner.contains('<') && !inner.contains('>'));
            let unescaped = inner
                .replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&quot;", "\"")
                .replace("&apos;", "'")
                .replace("&#xD;", "\r")
                .replace("&amp;", "&");
            let allowed: String = text.chars().filter(|&c| escaped(c) != Some("")).collect();
            proptest::prop_assert_eq!(unescaped, allowed);
        }
    }
}

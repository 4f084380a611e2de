//! A small XML writer for EC2 responses, writing into one `String`.

use std::fmt::Write;

pub const EC2_XMLNS: &str = "http://ec2.amazonaws.com/doc/2016-11-15/";

/// Writes nested elements; `end` closes the most recently started one.
#[derive(Default)]
pub struct XmlWriter {
    out: String,
    open: Vec<String>,
}

/// Escapes text for element content; characters XML 1.0 forbids are dropped.
fn escape_into(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => {}
            c => out.push(c),
        }
    }
}

impl XmlWriter {
    pub fn new() -> XmlWriter {
        XmlWriter::default()
    }

    pub fn start(&mut self, name: &str) {
        let _ = write!(self.out, "<{name}>");
        self.open.push(name.to_owned());
    }

    pub fn end(&mut self) {
        if let Some(name) = self.open.pop() {
            let _ = write!(self.out, "</{name}>");
        }
    }

    /// `<name>text</name>`
    pub fn leaf(&mut self, name: &str, text: &str) {
        let _ = write!(self.out, "<{name}>");
        escape_into(&mut self.out, text);
        let _ = write!(self.out, "</{name}>");
    }

    /// Closes whatever is still open and returns the document.
    pub fn finish(mut self) -> String {
        while !self.open.is_empty() {
            self.end();
        }
        self.out
    }
}

/// `<?xml?><{Action}Response xmlns=…><requestId>…</requestId>…</{Action}Response>`
pub fn ec2_response(action: &str, request_id: &str, body: impl FnOnce(&mut XmlWriter)) -> String {
    let mut xml = XmlWriter::new();
    let _ = write!(
        xml.out,
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<{action}Response xmlns=\"{EC2_XMLNS}\">"
    );
    xml.leaf("requestId", request_id);
    body(&mut xml);
    let mut out = xml.finish();
    let _ = write!(out, "</{action}Response>");
    out
}

/// The EC2 error envelope.
pub fn ec2_error(code: &str, message: &str, request_id: &str) -> String {
    let mut xml = XmlWriter::new();
    xml.out
        .push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
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
        let xml = ec2_response("DescribeRegions", "req-1", |w| {
            w.start("regionInfo");
            w.start("item");
            w.leaf("regionName", "a<b>&\"c'\u{1}d");
            w.end();
            w.end();
        });
        assert_eq!(
            xml,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<DescribeRegionsResponse xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\">\
             <requestId>req-1</requestId><regionInfo><item><regionName>a&lt;b&gt;&amp;&quot;c&apos;d</regionName></item></regionInfo>\
             </DescribeRegionsResponse>"
        );
        let error = ec2_error("AuthFailure", "no & no", "r");
        assert!(error.ends_with("<Response><Errors><Error><Code>AuthFailure</Code><Message>no &amp; no</Message></Error></Errors><RequestID>r</RequestID></Response>"));
    }
}

//! Checks a response body against the operation's output shape, element by element.

use quick_xml::events::Event;
use quick_xml::Reader;

use crate::model::{model, Kind};

enum Frame {
    Shape(usize),
    /// Inside `requestId` or another element the model does not describe at the root.
    Opaque,
}

/// `Ok` when every element of `xml` is a member of the output shape of `action` (by its XML
/// name), lists are `<xSet><item>`, and scalars parse as their types.
pub fn check_output_xml(action: &str, xml: &str) -> Result<(), String> {
    let model = model();
    let output = *model
        .outputs
        .get(action)
        .ok_or_else(|| format!("{action} is not modeled"))?;
    let mut reader = Reader::from_str(xml);
    let mut stack: Vec<Frame> = Vec::new();
    let mut path: Vec<String> = Vec::new();
    loop {
        let event = reader
            .read_event()
            .map_err(|e| format!("malformed XML: {e}"))?;
        match &event {
            Event::Start(start) | Event::Empty(start) => {
                let name = String::from_utf8_lossy(start.name().as_ref()).into_owned();
                let frame = if stack.is_empty() {
                    if name != format!("{action}Response") {
                        return Err(format!(
                            "root element is <{name}>, expected <{action}Response>"
                        ));
                    }
                    output.map(Frame::Shape).unwrap_or(Frame::Opaque)
                } else {
                    child_frame(&stack, &name, stack.len() == 1)
                        .map_err(|e| format!("{}/{name}: {e}", path.join("/")))?
                };
                if matches!(event, Event::Start(_)) {
                    path.push(name);
                    stack.push(frame);
                }
            }
            Event::Text(text) => {
                if let Some(Frame::Shape(shape)) = stack.last() {
                    let text = text.unescape().map_err(|e| format!("bad text: {e}"))?;
                    check_scalar(*shape, &text).map_err(|e| format!("{}: {e}", path.join("/")))?;
                }
            }
            Event::End(_) => {
                stack.pop();
                path.pop();
            }
            Event::Eof => return Ok(()),
            _ => {}
        }
    }
}

fn child_frame(stack: &[Frame], name: &str, at_root: bool) -> Result<Frame, String> {
    let model = model();
    let Some(Frame::Shape(parent)) = stack.last() else {
        return Ok(Frame::Opaque);
    };
    match &model.shapes[*parent] {
        Kind::Structure {
            by_xml_name,
            members,
            ..
        } => match by_xml_name.get(name) {
            Some(index) => Ok(Frame::Shape(members[*index].shape)),
            None if at_root && name == "requestId" => Ok(Frame::Opaque),
            None => Err("not a member of the output shape".into()),
        },
        Kind::List { member, xml_item } => {
            if name == xml_item {
                Ok(Frame::Shape(*member))
            } else {
                Err(format!("list items must be <{xml_item}>"))
            }
        }
        _ => Err("a scalar cannot contain elements".into()),
    }
}

fn check_scalar(shape: usize, text: &str) -> Result<(), String> {
    match &model().shapes[shape] {
        Kind::Integer { .. } if text.trim().parse::<i64>().is_err() => {
            Err(format!("'{text}' is not an integer"))
        }
        Kind::Boolean if text != "true" && text != "false" => {
            Err(format!("'{text}' is not a boolean"))
        }
        Kind::Double if text.trim().parse::<f64>().is_err() => {
            Err(format!("'{text}' is not a number"))
        }
        Kind::String {
            allowed: Some(allowed),
        } if !allowed.contains(text) => Err(format!("'{text}' is not an accepted value")),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_valid_and_rejects_misspelt() {
        let good = "<DescribeRegionsResponse xmlns=\"x\"><requestId>r</requestId><regionInfo><item><regionName>us-east-1</regionName></item></regionInfo></DescribeRegionsResponse>";
        assert_eq!(check_output_xml("DescribeRegions", good), Ok(()));
        let bad = good.replace("regionName", "regionNmae");
        assert!(check_output_xml("DescribeRegions", &bad)
            .unwrap_err()
            .contains("regionNmae"));
        let bad_list = good
            .replace("<item>", "<member>")
            .replace("</item>", "</member>");
        assert!(check_output_xml("DescribeRegions", &bad_list).is_err());
    }
}

//! Checks a response body against the operation's output shape, element by element: for the
//! tests of every handler, so a misspelt element or a badly typed value is caught before a
//! client (which would silently drop it) sees it.

use base64::Engine;
use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;

use crate::decode::is_timestamp;
use crate::model::{model, Kind, Model, ShapeId};

const NAMESPACE: &str = "http://ec2.amazonaws.com/doc/2016-11-15/";

/// What an open element is.
enum Frame {
    /// An element of the modeled shape; `seen` holds the structure members already present.
    Shape { id: ShapeId, seen: Vec<usize> },
    /// The root of an operation without an output shape: only `requestId` and `return`.
    VoidRoot,
    /// `requestId`, or `return` of a void operation: text whose type the caller asserts.
    Opaque { boolean: bool },
}

/// `Ok` when `xml` is `<{action}Response xmlns="…/2016-11-15/">` with a `requestId` and
/// elements that are all members of the action's output shape by their XML names, lists as
/// `<xSet><item>…</item></xSet>`, each non-list member at most once and every scalar parsing
/// as its type. The error names the offending element by its path.
pub fn check_output_xml(action: &str, xml: &str) -> Result<(), String> {
    let model = model();
    let output = model
        .output(action)
        .ok_or_else(|| format!("{action} is not modeled"))?;
    let mut reader = Reader::from_str(xml);
    let mut stack: Vec<Frame> = Vec::new();
    let mut path: Vec<String> = Vec::new();
    let mut text = String::new();
    let mut seen_root = false;
    let mut seen_request_id = false;
    loop {
        let event = reader
            .read_event()
            .map_err(|e| format!("{}: malformed XML: {e}", path.join("/")))?;
        match event {
            Event::Start(ref start) | Event::Empty(ref start) => {
                check_no_text(&text).map_err(|e| format!("{}: {e}", path.join("/")))?;
                let name = String::from_utf8_lossy(start.name().as_ref()).into_owned();
                path.push(name);
                let at = || path.join("/");
                let at_root = stack.len() == 1;
                let frame = match stack.last_mut() {
                    None if seen_root => return Err(format!("{}: a second root element", at())),
                    None => {
                        seen_root = true;
                        check_root(action, start).map_err(|e| format!("{}: {e}", at()))?;
                        output.map_or(Frame::VoidRoot, |id| Frame::Shape {
                            id,
                            seen: Vec::new(),
                        })
                    }
                    Some(parent) => {
                        let name = path.last().map_or("", String::as_str);
                        if at_root && name == "requestId" {
                            if std::mem::replace(&mut seen_request_id, true) {
                                return Err(format!("{}: given twice", at()));
                            }
                            Frame::Opaque { boolean: false }
                        } else {
                            child(model, parent, name).map_err(|e| format!("{}: {e}", at()))?
                        }
                    }
                };
                text.clear();
                if matches!(event, Event::Start(_)) {
                    stack.push(frame);
                } else {
                    check_text(model, &frame, "")
                        .map_err(|e| format!("{}: {e}", path.join("/")))?;
                    path.pop();
                }
            }
            Event::Text(ref content) => {
                let content = content
                    .unescape()
                    .map_err(|e| format!("{}: bad text: {e}", path.join("/")))?;
                text.push_str(&content);
            }
            Event::CData(ref content) => text.push_str(&String::from_utf8_lossy(content)),
            Event::End(_) => {
                if let Some(frame) = stack.pop() {
                    check_text(model, &frame, &text)
                        .map_err(|e| format!("{}: {e}", path.join("/")))?;
                }
                text.clear();
                path.pop();
            }
            Event::Eof if !stack.is_empty() => {
                return Err(format!("{}: not closed", path.join("/")))
            }
            Event::Eof if !seen_root => return Err("no root element".to_owned()),
            Event::Eof if !seen_request_id => {
                return Err(format!("{action}Response: no requestId"))
            }
            Event::Eof => return Ok(()),
            _ => {}
        }
    }
}

fn check_root(action: &str, start: &BytesStart) -> Result<(), String> {
    let expected = format!("{action}Response");
    if start.name().as_ref() != expected.as_bytes() {
        return Err(format!("the root element must be <{expected}>"));
    }
    let namespace = start
        .try_get_attribute("xmlns")
        .map_err(|e| format!("bad attribute: {e}"))?
        .map(|attribute| attribute.value.into_owned());
    match namespace {
        Some(value) if value == NAMESPACE.as_bytes() => Ok(()),
        _ => Err(format!("the root element must have xmlns=\"{NAMESPACE}\"")),
    }
}

fn child(model: &Model, parent: &mut Frame, name: &str) -> Result<Frame, String> {
    let id = match parent {
        Frame::VoidRoot if name == "return" => return Ok(Frame::Opaque { boolean: true }),
        Frame::VoidRoot => {
            return Err("the action has no output besides requestId and return".into())
        }
        Frame::Opaque { .. } => return Err("a scalar cannot contain elements".into()),
        Frame::Shape { id, seen } => match &model.shape(*id).kind {
            Kind::Structure(structure) => {
                let Some(&position) = structure.by_xml_name.get(name) else {
                    let mut names: Vec<&str> = structure
                        .members
                        .iter()
                        .map(|m| m.xml_name.as_str())
                        .collect();
                    names.sort_unstable();
                    return Err(format!(
                        "not a member of {} (members: {})",
                        model.shape(*id).name,
                        names.join(", ")
                    ));
                };
                if seen.contains(&position) {
                    return Err("given twice".into());
                }
                seen.push(position);
                structure.members[position].shape
            }
            Kind::List {
                member, xml_item, ..
            } if name == xml_item => *member,
            Kind::List { xml_item, .. } => {
                return Err(format!("the items of this list must be <{xml_item}>"))
            }
            _ => return Err("a scalar cannot contain elements".into()),
        },
    };
    Ok(Frame::Shape {
        id,
        seen: Vec::new(),
    })
}

/// Checks the text directly inside a closed element against its type.
fn check_text(model: &Model, frame: &Frame, text: &str) -> Result<(), String> {
    let bad = |why: &str| Err(format!("'{text}' is {why}"));
    let id = match frame {
        Frame::Opaque { boolean: true } if text != "true" && text != "false" => {
            return bad("not a boolean")
        }
        Frame::Opaque { .. } => return Ok(()),
        Frame::VoidRoot => return check_no_text(text),
        Frame::Shape { id, .. } => *id,
    };
    match &model.shape(id).kind {
        Kind::Structure(_) | Kind::List { .. } => check_no_text(text),
        Kind::String {
            allowed: Some(allowed),
            ..
        } if !allowed.contains(text) => bad(&format!("not a value of {}", model.shape(id).name)),
        Kind::String { .. } => Ok(()),
        Kind::Integer(_) if text.parse::<i64>().is_err() => bad("not an integer"),
        Kind::Boolean if text != "true" && text != "false" => bad("not a boolean"),
        Kind::Double if !text.parse::<f64>().is_ok_and(f64::is_finite) => bad("not a number"),
        Kind::Timestamp if !is_timestamp(text) => bad("not an ISO 8601 timestamp"),
        Kind::Blob
            if base64::engine::general_purpose::STANDARD
                .decode(text)
                .is_err() =>
        {
            bad("not base64")
        }
        Kind::Integer(_) | Kind::Boolean | Kind::Double | Kind::Timestamp | Kind::Blob => Ok(()),
    }
}

fn check_no_text(text: &str) -> Result<(), String> {
    if text.trim().is_empty() {
        Ok(())
    } else {
        Err(format!("text '{}' where only elements belong", text.trim()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const REGIONS: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
        <DescribeRegionsResponse xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\">\n\
        <requestId>7a62c49f-347e-4fc4-9331-6e8eEXAMPLE</requestId>\n\
        <regionInfo>\n\
          <item><regionName>us-east-1</regionName><regionEndpoint>ec2.us-east-1.amazonaws.com</regionEndpoint><optInStatus>opt-in-not-required</optInStatus></item>\n\
          <item><regionName>eu-west-1</regionName><regionEndpoint>ec2.eu-west-1.amazonaws.com</regionEndpoint></item>\n\
        </regionInfo>\n\
        </DescribeRegionsResponse>";

    const VOLUMES: &str =
        "<DescribeVolumesResponse xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\">\
        <requestId>r</requestId><volumeSet><item><volumeId>vol-1</volumeId><size>8</size>\
        <status>available</status><createTime>2024-05-01T12:00:00.000Z</createTime>\
        <encrypted>false</encrypted><tagSet/><attachmentSet/></item></volumeSet>\
        </DescribeVolumesResponse>";

    fn error_of(action: &str, xml: &str) -> String {
        check_output_xml(action, xml).expect_err("the body is wrong")
    }

    #[test]
    fn accepts_well_formed_responses() {
        assert_eq!(check_output_xml("DescribeRegions", REGIONS), Ok(()));
        assert_eq!(check_output_xml("DescribeVolumes", VOLUMES), Ok(()));
        let void = "<DeleteVolumeResponse xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\">\
            <requestId>r</requestId><return>true</return></DeleteVolumeResponse>";
        assert_eq!(check_output_xml("DeleteVolume", void), Ok(()));
    }

    #[test]
    fn names_a_misspelt_element_by_its_path() {
        let error = error_of(
            "DescribeRegions",
            &REGIONS.replace("regionEndpoint", "regionEndPoint"),
        );
        assert!(
            error.starts_with(
                "DescribeRegionsResponse/regionInfo/item/regionEndPoint: not a member of Region"
            ),
            "{error}"
        );
        assert!(error.contains("regionEndpoint"), "{error}");
    }

    #[test]
    fn rejects_structural_mistakes() {
        let cases = [
            (
                "list item",
                REGIONS
                    .replace("<item>", "<member>")
                    .replace("</item>", "</member>"),
                "/member",
            ),
            (
                "root",
                REGIONS.replace("DescribeRegionsResponse", "DescribeRegionResponse"),
                "root element",
            ),
            (
                "namespace",
                REGIONS.replace("2016-11-15", "2014-01-01"),
                "xmlns",
            ),
            (
                "request id",
                REGIONS.replace(
                    "<requestId>7a62c49f-347e-4fc4-9331-6e8eEXAMPLE</requestId>",
                    "",
                ),
                "requestId",
            ),
            (
                "twice",
                REGIONS.replace("</regionName>", "</regionName><regionName>x</regionName>"),
                "given twice",
            ),
            (
                "stray text",
                REGIONS.replace("<regionInfo>", "<regionInfo>oops"),
                "oops",
            ),
            (
                "unclosed",
                REGIONS.replace("</DescribeRegionsResponse>", ""),
                "DescribeRegionsResponse",
            ),
        ];
        for (what, xml, expected) in cases {
            let error = error_of("DescribeRegions", &xml);
            assert!(error.contains(expected), "{what}: {error}");
        }
    }

    #[test]
    fn checks_scalar_types() {
        let cases = [
            (
                "<size>8</size>",
                "<size>eight</size>",
                "volumeSet/item/size: 'eight' is not an integer",
            ),
            ("<size>8</size>", "<size/>", "size: '' is not an integer"),
            (
                "<encrypted>false</encrypted>",
                "<encrypted>no</encrypted>",
                "not a boolean",
            ),
            (
                "<status>available</status>",
                "<status>Available</status>",
                "not a value of VolumeState",
            ),
            (
                "2024-05-01T12:00:00.000Z",
                "yesterday",
                "not an ISO 8601 timestamp",
            ),
            (
                "<volumeId>vol-1</volumeId>",
                "<volumeId><id>vol-1</id></volumeId>",
                "cannot contain elements",
            ),
        ];
        for (good, bad, expected) in cases {
            let error = error_of("DescribeVolumes", &VOLUMES.replace(good, bad));
            assert!(error.contains(expected), "{bad}: {error}");
        }
        let void = "<RebootInstancesResponse xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\">\
            <requestId>r</requestId><return>yes</return></RebootInstancesResponse>";
        assert!(error_of("RebootInstances", void).contains("not a boolean"));
        assert!(error_of("CreateVpcPeeringConnection", VOLUMES).contains("not modeled"));
    }

    proptest! {
        #[test]
        fn truncated_or_garbled_bodies_are_rejected_without_panic(
            cut in 0..REGIONS.len(),
            garbage in any::<String>(),
        ) {
            prop_assert!(check_output_xml("DescribeRegions", &REGIONS[..cut]).is_err());
            let garbled = format!("{}{garbage}{}", &REGIONS[..cut], &REGIONS[cut..]);
            let _ = check_output_xml("DescribeRegions", &garbled);
        }
    }
}

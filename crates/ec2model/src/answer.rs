//! EC2 answers encoded from the operations' output shapes by awsproto's walker (the one the
//! Query services use, in its EC2 dialect), with the one EC2 choice the model does not state:
//! which empty lists an answer carries.

use std::sync::OnceLock;

use awsproto::{EncodeError, Lookup, ServiceModel};
use serde::Serialize;

/// Empty lists are sent (`<groupSet></groupSet>`), as EC2 does for most sets. A resource's
/// tags (`TagList`) are the exception: EC2 leaves out the `tagSet` of an untagged resource
/// (DescribeInstances, DescribeVolumes, …).
const OMITTED_WHEN_EMPTY: &[&str] = &["TagList"];

/// Answers that send these lists even when empty, as EC2 does (Ansible's `ec2_vpc_igw` reads
/// the new gateway's `tagSet`).
const SENT_WHEN_EMPTY: &[(&str, &str)] = &[("CreateInternetGateway", "TagList")];

/// Whether `action`'s answer writes an empty list of shape `list_shape` or leaves it out.
fn sends_empty(action: &str, list_shape: &str) -> bool {
    !OMITTED_WHEN_EMPTY.contains(&list_shape) || SENT_WHEN_EMPTY.contains(&(action, list_shape))
}

fn service_model() -> &'static ServiceModel {
    static MODEL: OnceLock<ServiceModel> = OnceLock::new();
    MODEL.get_or_init(|| {
        // The embedded file is generated and a test reads it: failing here is a build defect.
        ServiceModel::from_json(include_str!("../model/ec2.json"))
            .unwrap_or_else(|e| panic!("model/ec2.json is not a usable model: {e}"))
    })
}

/// The XML answer of `action` (one nimbus models) from `output`, a value keyed by the output
/// shape's member names (JSON, or a struct whose fields serialize under those names); members
/// the shape does not have are left out. `None` for an action the model does not carry.
pub fn encode_output<T: Serialize + ?Sized>(
    action: &str,
    output: &T,
    request_id: &str,
) -> Option<Result<String, EncodeError>> {
    let model = service_model();
    let Lookup::Modeled(operation) = model.lookup(action) else {
        return None;
    };
    let sends_empty = |list_shape: &str| sends_empty(action, list_shape);
    Some(awsproto::encode_ec2_output(
        model,
        &operation,
        output,
        request_id,
        &sends_empty,
    ))
}

/// The actions nimbus models (`model/actions.txt`), which are the actions it answers.
pub fn modeled_actions() -> impl Iterator<Item = &'static str> {
    let model = service_model();
    model.operations().filter(|name| model.is_modeled(name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check_output_xml;
    use serde_json::{json, Value};

    const HEAD: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";

    #[test]
    fn encodes_the_ec2_dialect() {
        let gateway = json!({"InternetGateway": {"InternetGatewayId": "igw-1", "OwnerId": "0",
                             "Attachments": [], "Tags": [], "Unmodeled": 1}});
        let xml = encode_output("CreateInternetGateway", &gateway, "r")
            .expect("modeled")
            .expect("encodes");
        assert_eq!(
            xml,
            format!(
                "{HEAD}<CreateInternetGatewayResponse xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\">\
                 <requestId>r</requestId><internetGateway><attachmentSet></attachmentSet>\
                 <internetGatewayId>igw-1</internetGatewayId><ownerId>0</ownerId><tagSet></tagSet>\
                 </internetGateway></CreateInternetGatewayResponse>"
            )
        );
        check_output_xml("CreateInternetGateway", &xml).expect("valid");
        // Elsewhere an untagged resource has no tagSet, other empty lists stay.
        let described = json!({"InternetGateways": [{"InternetGatewayId": "igw-1", "Attachments": [],
                               "Tags": []}]});
        let xml = encode_output("DescribeInternetGateways", &described, "r")
            .expect("modeled")
            .expect("encodes");
        assert!(xml.contains("<attachmentSet></attachmentSet>") && !xml.contains("tagSet"));
        // DescribeTags' own tagSet is a page, not a resource's tags: sent empty.
        let xml = encode_output("DescribeTags", &json!({"Tags": []}), "r")
            .expect("modeled")
            .expect("encodes");
        assert!(xml.contains("<tagSet></tagSet>"));
        let tagged = json!({"Tags": [{"Key": "k", "ResourceId": "vol-1", "ResourceType": "volume",
                            "Value": "v & w"}], "NextToken": "t"});
        let xml = encode_output("DescribeTags", &tagged, "r")
            .expect("modeled")
            .expect("encodes");
        assert!(xml.contains(
            "<nextToken>t</nextToken><tagSet><item><key>k</key><resourceId>vol-1</resourceId>\
             <resourceType>volume</resourceType><value>v &amp; w</value></item></tagSet>"
        ));
        check_output_xml("DescribeTags", &xml).expect("valid");
    }

    #[test]
    fn an_action_without_output_answers_return_true() {
        let xml = encode_output("AttachInternetGateway", &Value::Null, "r")
            .expect("modeled")
            .expect("encodes");
        assert!(xml.ends_with(
            "<requestId>r</requestId><return>true</return></AttachInternetGatewayResponse>"
        ));
        check_output_xml("AttachInternetGateway", &xml).expect("valid");
        assert!(encode_output("CreateVpcPeeringConnection", &Value::Null, "r").is_none());
    }

    /// Answers the JSON walker this encoder replaced wrote (before commit "EC2 answers
    /// serialize straight into XML"), one per modeled action, from values generated over each
    /// output shape: nested structures, lists, empty lists (the `TagList` rule), nulls,
    /// members the shape lacks, timestamps in several forms, booleans, numbers, text to
    /// escape. The same values must give the same bytes.
    #[test]
    fn answers_match_the_previous_encoder() {
        let cases = include_str!("../tests/fixtures/answers-before.jsonl");
        for line in cases.lines() {
            let case: Value = serde_json::from_str(line).expect("a case");
            let action = case["action"].as_str().expect("an action");
            let xml = encode_output(action, &case["value"], "r")
                .expect("modeled")
                .expect("encodes");
            assert_eq!(Some(xml.as_str()), case["xml"].as_str(), "{action}");
        }
        // A frozen record: actions modeled since then are encoded by the same walk.
        assert!(cases.lines().count() >= 100);
    }

    /// A handler's answer struct and the JSON of the same members give the same answer,
    /// whatever order the struct declares its fields in.
    #[test]
    fn structs_answer_as_their_json() {
        #[derive(serde::Serialize)]
        #[serde(rename_all = "PascalCase")]
        struct KeyPair {
            create_time: &'static str,
            key_name: &'static str,
            tags: Vec<Tag>,
            key_pair_id: &'static str,
            public_key: Option<&'static str>,
        }
        #[derive(serde::Serialize)]
        #[serde(rename_all = "PascalCase")]
        struct Tag {
            key: &'static str,
            value: &'static str,
        }
        #[derive(serde::Serialize)]
        #[serde(rename_all = "PascalCase")]
        struct Output {
            key_pairs: Vec<KeyPair>,
        }
        let typed = Output {
            key_pairs: vec![KeyPair {
                create_time: "2026-11-29T13:00:00+01:00",
                key_name: "a<b",
                tags: vec![Tag {
                    key: "k",
                    value: "v",
                }],
                key_pair_id: "key-1",
                public_key: None,
            }],
        };
        let described = json!({"KeyPairs": [{"KeyPairId": "key-1", "KeyName": "a<b",
            "Tags": [{"Key": "k", "Value": "v"}], "CreateTime": "2026-11-29T12:00:00.000Z"}]});
        let typed = encode_output("DescribeKeyPairs", &typed, "r").expect("modeled");
        let described = encode_output("DescribeKeyPairs", &described, "r").expect("modeled");
        assert_eq!(typed.expect("encodes"), described.expect("encodes"));
    }

    #[test]
    fn the_empty_set_table_names_modeled_shapes() {
        let model = service_model();
        for (action, shape) in SENT_WHEN_EMPTY {
            assert!(model.is_modeled(action), "{action}");
            assert!(OMITTED_WHEN_EMPTY.contains(shape), "{shape}");
        }
    }
}

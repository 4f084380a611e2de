//! botocore's models of the services nimbus serves besides EC2 (committed subsets under
//! `model/`, made by `scripts/gen-awsmodel.py`), and a table of every AWS service's protocol,
//! so that a request to a service nimbus lacks is answered in that service's own protocol.

use std::collections::HashMap;
use std::sync::OnceLock;

use awsproto::{ErrorStyle, Protocol, ServiceModel};
use serde::Deserialize;

/// The models nimbus carries, by SigV4 signing name.
const MODELS: [(&str, &str); 6] = [
    ("sts", include_str!("../model/sts.json")),
    ("iam", include_str!("../model/iam.json")),
    ("monitoring", include_str!("../model/monitoring.json")),
    ("autoscaling", include_str!("../model/autoscaling.json")),
    (
        "elasticloadbalancing",
        include_str!("../model/elasticloadbalancing.json"),
    ),
    ("ssm", include_str!("../model/ssm.json")),
];

fn models() -> &'static HashMap<&'static str, ServiceModel> {
    static MODELS_BY_NAME: OnceLock<HashMap<&'static str, ServiceModel>> = OnceLock::new();
    MODELS_BY_NAME.get_or_init(|| {
        MODELS
            .iter()
            .map(|(name, json)| {
                // The embedded files are generated and a test builds them: a failure here is a
                // build defect, not a request's.
                let model = ServiceModel::from_json(json)
                    .unwrap_or_else(|e| panic!("model/{name}.json: {e}"));
                (*name, model)
            })
            .collect()
    })
}

/// The model of the service signed as `signing_name`, when nimbus carries it.
pub fn service(signing_name: &str) -> Option<&'static ServiceModel> {
    models().get(signing_name)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TableEntry {
    protocol: String,
    json_version: Option<String>,
    xml_namespace: Option<String>,
    #[serde(default)]
    aws_query_compatible: bool,
}

/// How a service speaks, from the table of every botocore service.
pub struct ServiceWire {
    /// The protocol botocore's model prefers (a client may pick another it lists).
    pub protocol: Protocol,
    pub style: ErrorStyle<'static>,
}

fn table() -> &'static HashMap<String, TableEntry> {
    static TABLE: OnceLock<HashMap<String, TableEntry>> = OnceLock::new();
    TABLE.get_or_init(|| {
        serde_json::from_str(include_str!("../model/services.json"))
            .unwrap_or_else(|e| panic!("model/services.json: {e}"))
    })
}

/// The wire facts of any AWS service, by signing name.
pub fn wire(signing_name: &str) -> Option<ServiceWire> {
    let entry = table().get(signing_name)?;
    Some(ServiceWire {
        protocol: Protocol::from_model(&entry.protocol, entry.json_version.as_deref())?,
        style: ErrorStyle {
            xml_namespace: entry.xml_namespace.as_deref(),
            query_compatible: entry.aws_query_compatible,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use awsproto::JsonVersion;

    #[test]
    fn every_embedded_model_builds() {
        for (name, _) in MODELS {
            let model = service(name).expect(name);
            assert!(model.operations().count() > 5, "{name}");
        }
        let sts = service("sts").expect("sts");
        assert!(
            sts.is_modeled("GetCallerIdentity") && !sts.is_modeled("DecodeAuthorizationMessage")
        );
        for list in [
            include_str!("../model/sts.txt"),
            include_str!("../model/iam.txt"),
            include_str!("../model/monitoring.txt"),
            include_str!("../model/ssm.txt"),
        ] {
            let lines = list
                .lines()
                .filter(|l| !l.is_empty() && !l.starts_with('#'));
            for operation in lines {
                assert!(
                    MODELS
                        .iter()
                        .any(|(name, _)| service(name)
                            .is_some_and(|model| model.is_modeled(operation))),
                    "{operation} is listed but not modeled"
                );
            }
        }
    }

    #[test]
    fn the_table_knows_every_service_protocol() {
        assert!(table().len() > 300);
        let protocol = |name: &str| wire(name).map(|wire| wire.protocol);
        assert_eq!(protocol("ssm"), Some(Protocol::Json(JsonVersion::V1_1)));
        assert_eq!(protocol("kms"), Some(Protocol::Json(JsonVersion::V1_1)));
        assert_eq!(protocol("sqs"), Some(Protocol::Json(JsonVersion::V1_0)));
        assert_eq!(protocol("s3"), Some(Protocol::RestXml));
        assert_eq!(protocol("lambda"), Some(Protocol::RestJson));
        assert_eq!(protocol("sts"), Some(Protocol::Query));
        assert_eq!(protocol("ec2"), Some(Protocol::Ec2));
        let monitoring = wire("monitoring").expect("monitoring");
        assert!(monitoring.style.query_compatible);
        assert_eq!(protocol("no-such-service"), None);
    }
}

//! `clusters[].aws_msk_iam`: AWS MSK IAM authentication. The region to sign for, an optional
//! profile of the shared credentials file, and the environment variables of the AWS credential
//! chain as the process started with them (read here, since only `config` reads the
//! environment); `kafka::msk_iam` signs the tokens.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;

use super::{field_error, ConfigError, KafkaValue, Sources};

/// The variables the AWS credential chain reads.
const CHAIN_VARIABLES: &[&str] = &[
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_ROLE_ARN",
    "AWS_ROLE_SESSION_NAME",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ENDPOINT_URL_STS",
    "AWS_ENDPOINT_URL",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
    "HOME",
];

#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a mapping with region and an optional profile"
)]
pub(super) struct RawAwsMskIam {
    region: String,
    #[serde(default)]
    profile: Option<String>,
}

/// A cluster's MSK IAM settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AwsMskIam {
    /// The cluster's AWS region, e.g. `eu-west-1`.
    pub region: String,
    /// Profile of the shared credentials file; `None`: `AWS_PROFILE`, else `default`.
    pub profile: Option<String>,
    pub environment: AwsEnvironment,
}

/// The credential chain's environment variables that are set. `Debug` shows names only.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct AwsEnvironment(pub BTreeMap<String, String>);

impl fmt::Debug for AwsEnvironment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.0.keys()).finish()
    }
}

impl AwsEnvironment {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }
}

/// Validates `raw` at `path` (`clusters[i].aws_msk_iam`) against the cluster's librdkafka
/// properties: the tokens go through OAUTHBEARER's refresh hook, which OIDC and the unsecured
/// JWT generator would replace.
pub(super) fn resolve(
    path: &str,
    raw: RawAwsMskIam,
    kafka: &[(String, KafkaValue)],
    sources: &Sources<'_>,
) -> Result<AwsMskIam, ConfigError> {
    let region_ok = !raw.region.is_empty()
        && raw
            .region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !region_ok {
        return Err(field_error(
            format!("{path}.region"),
            format!("not an AWS region: {:?}", raw.region),
        ));
    }
    let property = |name: &str| {
        kafka
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.value.as_str())
    };
    let mechanism = property("sasl.mechanism").or(property("sasl.mechanisms"));
    if !mechanism.is_some_and(|m| m.eq_ignore_ascii_case("OAUTHBEARER")) {
        return Err(field_error(
            path,
            "needs kafka property sasl.mechanism: OAUTHBEARER",
        ));
    }
    if property("sasl.oauthbearer.method").is_some_and(|m| m.eq_ignore_ascii_case("oidc")) {
        return Err(field_error(
            path,
            "cannot be combined with kafka property sasl.oauthbearer.method: oidc",
        ));
    }
    if property("enable.sasl.oauthbearer.unsecure.jwt").is_some_and(|v| v == "true") {
        return Err(field_error(
            path,
            "cannot be combined with kafka property enable.sasl.oauthbearer.unsecure.jwt",
        ));
    }
    let environment = CHAIN_VARIABLES
        .iter()
        .filter_map(|name| Some((name.to_string(), (sources.env)(name).ok()?)))
        .collect();
    Ok(AwsMskIam {
        region: raw.region,
        profile: raw.profile,
        environment: AwsEnvironment(environment),
    })
}

#[cfg(test)]
mod tests {
    use super::super::tests::parse_in;

    fn cluster(lines: &str) -> String {
        format!("clusters:\n  - name: msk\n    bootstrap_servers: \"b-1.msk:9098\"\n{lines}")
    }

    const OAUTHBEARER: &str =
        "    kafka: {security.protocol: SASL_SSL, sasl.mechanism: OAUTHBEARER}\n";

    #[test]
    fn settings_take_the_region_profile_and_the_chain_variables() {
        let text = cluster(&format!(
            "    aws_msk_iam: {{region: eu-west-1, profile: monitoring}}\n{OAUTHBEARER}"
        ));
        let vars = [
            ("AWS_ACCESS_KEY_ID", "AKIDENV"),
            ("AWS_SECRET_ACCESS_KEY", "zz-secret-zz"),
            ("PATH", "/bin"),
        ];
        let config = parse_in(&text, &vars, None).expect("valid");
        let msk = config.clusters[0].aws_msk_iam.clone().expect("set");
        assert_eq!(msk.region, "eu-west-1");
        assert_eq!(msk.profile.as_deref(), Some("monitoring"));
        assert_eq!(msk.environment.get("AWS_ACCESS_KEY_ID"), Some("AKIDENV"));
        // Only the chain's variables are kept.
        assert_eq!(msk.environment.get("PATH"), None);
        // Neither Debug nor check-config shows a value of the environment.
        let shown = format!("{config:?}\n{}", config.describe());
        assert!(!shown.contains("zz-secret-zz") && !shown.contains("AKIDENV"));
        assert!(config.describe().contains(
            "    aws_msk_iam:\n      region: \"eu-west-1\"\n      profile: \"monitoring\"\n"
        ));
    }

    #[test]
    fn bad_settings_are_errors_naming_the_field() {
        // (cluster lines, the message)
        let cases = [
            // 1. No OAUTHBEARER: the tokens would never be asked for.
            (
                "    aws_msk_iam: {region: eu-west-1}\n".to_string(),
                "clusters[0].aws_msk_iam: needs kafka property sasl.mechanism: OAUTHBEARER",
            ),
            // 2. OIDC has its own token source, which would replace the MSK tokens.
            (
                "    aws_msk_iam: {region: eu-west-1}\n    kafka: {sasl.mechanism: OAUTHBEARER, sasl.oauthbearer.method: oidc}\n".to_string(),
                "clusters[0].aws_msk_iam: cannot be combined with kafka property sasl.oauthbearer.method: oidc",
            ),
            // 3. A region with characters no region has.
            (
                format!("    aws_msk_iam: {{region: \"EU West\"}}\n{OAUTHBEARER}"),
                "clusters[0].aws_msk_iam.region: not an AWS region: \"EU West\"",
            ),
            // 4. A misspelled key.
            (
                format!("    aws_msk_iam: {{region: eu-west-1, profil: x}}\n{OAUTHBEARER}"),
                "clusters[0].aws_msk_iam.profil: unknown field `profil`, expected `region` or `profile`",
            ),
            // 5. The region is required.
            (
                format!("    aws_msk_iam: {{}}\n{OAUTHBEARER}"),
                "clusters[0].aws_msk_iam: missing field `region`",
            ),
        ];
        for (n, (lines, expected)) in cases.iter().enumerate() {
            let message = match parse_in(&cluster(lines), &[], None) {
                Ok(_) => panic!("case {}: expected an error", n + 1),
                Err(e) => e.to_string(),
            };
            assert_eq!(&message, expected, "case {}", n + 1);
        }
    }
}

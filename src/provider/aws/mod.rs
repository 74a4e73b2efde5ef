//! Amazon Web Services: credentials as the AWS SDKs find them, and Signature Version 4, which the
//! Bedrock adapter signs its requests with and the simulator checks them with.

pub(crate) mod credentials;
pub(crate) mod sigv4;

pub(crate) use credentials::Credentials;

/// The service name `bedrock-runtime` requests are signed for: the SDKs scope the signature to
/// `bedrock`, not to the endpoint's name.
pub(crate) const BEDROCK_SIGNING_NAME: &str = "bedrock";

//! Amazon Web Services: credentials as the AWS SDKs find them, and Signature Version 4, which the
//! Bedrock adapter signs its requests with and the simulator checks them with.

pub(crate) mod credentials;

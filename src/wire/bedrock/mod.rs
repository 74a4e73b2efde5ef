//! Amazon Bedrock's wire: the Anthropic Messages body, sent to `InvokeModel` and
//! `InvokeModelWithResponseStream`, whose streamed answer comes framed as an AWS event stream.

pub(crate) mod eventstream;

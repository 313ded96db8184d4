//! How `provider token create` shows a new token. (The TLS layer's owner turns this into
//! the full enrollment token with the provider URL and CA fingerprint, and its QR code.)

use crate::model::NewToken;

/// Prints the token for the operator.
pub fn print_token(token: &NewToken) {
    println!("token id: {}", token.id);
    println!("secret:   {}", token.secret);
    println!("expires:  {} (Unix seconds)", token.expires_at);
}

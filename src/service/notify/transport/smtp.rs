//! Sending through an SMTP relay with lettre.

use std::time::Duration;

use async_trait::async_trait;

use super::{SendError, Transport};

/// Sends through an SMTP relay with lettre (STARTTLS, TLS, or plain text to loopback).
pub struct SmtpTransport {
    inner: lettre::AsyncSmtpTransport<lettre::Tokio1Executor>,
}

impl SmtpTransport {
    pub fn new(
        config: &crate::service::config::Smtp,
        password: Option<String>,
    ) -> Result<SmtpTransport, String> {
        use lettre::transport::smtp::authentication::Credentials;
        use lettre::{AsyncSmtpTransport, Tokio1Executor};
        let builder = match config.tls {
            crate::service::config::TlsMode::Starttls => {
                AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&config.host)
                    .map_err(|e| e.to_string())?
            }
            crate::service::config::TlsMode::Tls => {
                AsyncSmtpTransport::<Tokio1Executor>::relay(&config.host)
                    .map_err(|e| e.to_string())?
            }
            crate::service::config::TlsMode::None => {
                AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&config.host)
            }
        };
        let mut builder = builder
            .port(config.port)
            .timeout(Some(Duration::from_secs(config.timeout_seconds.max(1))));
        if let Some(user) = &config.username {
            let pw = password
                .ok_or("mail.smtp.username is set but CPWATCH_SMTP_PASSWORD (or _FILE) is not")?;
            builder = builder.credentials(Credentials::new(user.clone(), pw));
        }
        Ok(SmtpTransport {
            inner: builder.build(),
        })
    }
}

#[async_trait]
impl Transport for SmtpTransport {
    async fn send(&self, message: &lettre::Message) -> Result<(), SendError> {
        use lettre::AsyncTransport;
        match self.inner.send(message.clone()).await {
            Ok(_) => Ok(()),
            // A 5xx reply will not change by trying again; a 4xx may. Anything
            // else (refused, timed out, TLS) is the relay, not the recipient.
            Err(e) if e.is_permanent() => Err(SendError::Permanent(e.to_string())),
            Err(e) if e.is_transient() => Err(SendError::Transient(e.to_string())),
            Err(e) => Err(SendError::Unreachable(e.to_string())),
        }
    }
}

//! ActiveMQ Classic: its jar under `java`, its configuration (OpenWire and
//! STOMP on the replica's address, the image's user) written before each start.

use std::path::Path;

use cove_spec::model::Service;

use super::runner::{env_get, write_private};
use super::{ACTIVEMQ_HOME, Host, OPENWIRE_PORT, STOMP_PORT};

/// The command of a replica (see [`super::Recipe::command`]).
pub(super) fn command(svc: &Service, host: &Host) -> Vec<String> {
    let mut argv = vec![host.binary("java")];
    let opts = svc
        .environment
        .get("ACTIVEMQ_OPTS")
        .and_then(|v| v.as_deref())
        .and_then(|v| cove_spec::shell_words::split(v).ok())
        .unwrap_or_else(|| vec!["-Xms64M".into(), "-Xmx256M".into()]);
    argv.extend(opts);
    argv.extend(
        [
            &format!("-Dactivemq.home={ACTIVEMQ_HOME}"),
            "-Dactivemq.base=$COVE_DATA",
            "-Dactivemq.conf=$COVE_SECRETS/conf",
            "-Dactivemq.data=$COVE_DATA/data",
            "-Dlog4j.configuration=file:$COVE_SECRETS/conf/log4j.properties",
            "-jar",
            &format!("{ACTIVEMQ_HOME}/bin/activemq.jar"),
            "start",
            "xbean:file:$COVE_SECRETS/conf/activemq.xml",
        ]
        .map(String::from),
    );
    argv
}

/// Writes the broker's configuration before each start: OpenWire and STOMP
/// on the replica's address, KahaDB under its data directory, logs to the
/// console (which cove keeps), and a user when the image's variables ask.
pub(super) fn prepare_activemq(
    data: &Path,
    private: &Path,
    env: &[(String, String)],
) -> Result<(), String> {
    let host = env_get(env, "HOST").ok_or("the replica has no HOST")?;
    let conf = private.join("conf");
    fs_err::create_dir_all(&conf).map_err(|e| e.to_string())?;
    fs_err::create_dir_all(data.join("data")).map_err(|e| e.to_string())?;
    let x = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
    };
    let auth = match (
        env_get(env, "ACTIVEMQ_CONNECTION_USER"),
        env_get(env, "ACTIVEMQ_CONNECTION_PASSWORD"),
    ) {
        (None, None) => String::new(),
        (Some(user), Some(password)) => format!(
            r#"
    <plugins>
      <simpleAuthenticationPlugin>
        <users>
          <authenticationUser username="{}" password="{}" groups="users,admins"/>
        </users>
      </simpleAuthenticationPlugin>
    </plugins>"#,
            x(&user),
            x(&password)
        ),
        // The plan refuses this too ([`super::Recipe::check`]); an app
        // that did not come through it gets no open broker either.
        (user, _) => {
            return Err(format!(
                "`ACTIVEMQ_CONNECTION_USER` is {} but `ACTIVEMQ_CONNECTION_PASSWORD` is {}: the broker would accept anyone; set both (or neither)",
                if user.is_some() {
                    "set"
                } else {
                    "empty or missing"
                },
                if user.is_some() {
                    "empty or missing"
                } else {
                    "set"
                },
            ));
        }
    };
    let xml = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<!-- Written by cove before each start. -->
<beans xmlns="http://www.springframework.org/schema/beans"
       xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
       xsi:schemaLocation="http://www.springframework.org/schema/beans http://www.springframework.org/schema/beans/spring-beans.xsd
                           http://activemq.apache.org/schema/core http://activemq.apache.org/schema/core/activemq-core.xsd">
  <broker xmlns="http://activemq.apache.org/schema/core" brokerName="cove" useJmx="false"
          dataDirectory="{data}/data">
    <persistenceAdapter>
      <kahaDB directory="{data}/data/kahadb"/>
    </persistenceAdapter>{auth}
    <transportConnectors>
      <transportConnector name="openwire" uri="tcp://{host}:{OPENWIRE_PORT}"/>
      <transportConnector name="stomp" uri="stomp://{host}:{STOMP_PORT}"/>
    </transportConnectors>
  </broker>
</beans>
"#,
        data = x(&data.display().to_string()),
        host = x(&host),
    );
    write_private(&conf.join("activemq.xml"), &xml)?;
    // Debian's broker logs with log4j 1.2.
    let log4j = "log4j.rootLogger=INFO, console\n\
                 log4j.appender.console=org.apache.log4j.ConsoleAppender\n\
                 log4j.appender.console.layout=org.apache.log4j.PatternLayout\n\
                 log4j.appender.console.layout.ConversionPattern=%-5p | %m%n\n";
    write_private(&conf.join("log4j.properties"), log4j)
}

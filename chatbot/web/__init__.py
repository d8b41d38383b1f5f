"""What guards and carries the web app that `chatbot.app` assembles (the customer widget
at /, the agent console at /agent, the admin console at /admin): logins, sessions, the
Origin check, body limits, the route allowlist, readiness and the services the pages
are built from. Mounting the pages is `chatbot.app`'s job, not this package's."""

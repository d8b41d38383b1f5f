"""The web app: one FastAPI process that serves the customer widget (/), the agent
console (/agent) and the admin console (/admin), with logins for the consoles."""

"""Accounts of the people who staff the assistant: agents and admins.

`passwords` hashes and checks passwords (argon2id), `users` keeps the accounts in the
store (add, remove, roles, logins with growing delays after wrong passwords (`throttle`), the user behind a session),
`ratelimit` limits login attempts per client inside one process, and `secret` finds or
creates the key that signs session cookies. Customers have no account. Cookies, login
pages and request handling belong to `chatbot.web`.
"""

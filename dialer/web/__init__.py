"""`dialer web`: the browser face of tsunagu for agents and supervisors (issue 29), on the service layer.

Server-rendered pages (Starlette + Jinja2, served by uvicorn) with live regions pushed over Server-Sent Events
and a few lines of plain JavaScript (no build step: the README's two commands still set everything up). Every
request is a user of the service layer (`dialer.service`): the permission table decides, the figures come from
the same functions as the terminal monitor and reports, and commands go through the same use cases.

| module | what |
|---|---|
| `security` | session cookie, CSRF tokens, same-origin check, log-in rate limit, security headers |
| `app` | routes: log-in, agent console, supervisor floor, wallboard, live updates |
"""

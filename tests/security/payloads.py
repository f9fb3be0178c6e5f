"""Injection payloads: shell metacharacters, command substitution, backticks, newlines,
NUL, leading dashes, quotes, template syntax and look-alike Unicode, each of which would
`touch` a canary file if anything ever handed it to a shell.
"""

from __future__ import annotations

from collections.abc import Callable


def canary_path(run: str) -> str:
    return f"/tmp/vmgt-canary-{run}"


def attacks(run: str) -> list[str]:
    c = canary_path(run)
    cmd = f"touch {c}"
    ifs = cmd.replace(" ", "${IFS}")
    return [
        f";{cmd}",
        f"; {cmd};",
        f"&& {cmd}",
        f"|| {cmd}",
        f"| {cmd}",
        f"& {cmd} &",
        f"$({cmd})",
        f"`{cmd}`",
        f"\n{cmd}\n",
        f"\r\n{cmd}",
        f"\x00{cmd}",
        f"'; {cmd}; '",
        f'"; {cmd}; "',
        f"$(printf %s '{cmd}' | sh)",
        f";{ifs}",
        f"-e {cmd}",
        f"--exec={cmd}",
        f"-oProxyCommand={cmd}",
        f"-c '{cmd}'",
        "{{ cycler.__init__.__globals__.os.system('" + cmd + "') }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}" + f";{cmd}",
        "{% for x in range(1) %}" + f"$({cmd})" + "{% endfor %}",
        "{{ 7*7 }}" + f"`{cmd}`",
        f"$(eval '{cmd}')",
        f"\\`{cmd}\\`",
        f"$'\\x3b'{cmd}",
        f">{c}",
        f">>{c}",
        f"<(touch {c})",
        f"*; {cmd}",
        f"?[a-z]; {cmd}",
        f"~/;{cmd}",
        f"#;{cmd}",
        f"!!;{cmd}",
        f"\\${cmd}",
        f"\u037e {cmd}",  # Greek question mark, looks like ';'
        f"\uff1b{cmd}",  # fullwidth semicolon
        f"\u202e;{cmd}",  # right-to-left override
        f"\u200b;{cmd}",  # zero-width space
        f"\u2028{cmd}",  # line separator
        f"\ufeff$({cmd})",  # byte order mark
        f"\U0001f600;{cmd}",
        f"e\u0301;{cmd}",  # combining accent
        f"%s%n%x;{cmd}",
        f"${{{cmd}}}",
        f"$(({cmd}))",
        f'"${{@}}";{cmd}',
        f'\\";{cmd};\\"',
        f"\t{cmd}",
        f"\x1b[31m;{cmd}",
        f"\x7f;{cmd}",
        f"eval {cmd}",
        f"exec {cmd}",
        f"$(<{c})",
        f"a\\\n;{cmd}",
        f"{{a,b}};{cmd}",
        f"$HOME;{cmd}",
    ]


WRAPPERS: list[Callable[[str], str]] = [
    lambda a: a,
    lambda a: "x" + a,
    lambda a: a + "x",
    lambda a: "-" + a,
    lambda a: "--" + a,
    lambda a: " " + a,
    lambda a: "'" + a + "'",
    lambda a: '"' + a + '"',
    lambda a: "a b " + a,
    lambda a: a + a,
    lambda a: "ü" + a,
    lambda a: "$" + a,
]


def payloads(run: str) -> list[str]:
    """At least 500 distinct payloads (attacks x wrappers), in a stable order."""
    seen: dict[str, None] = {}
    for wrap in WRAPPERS:
        for attack in attacks(run):
            seen.setdefault(wrap(attack), None)
    return list(seen)


#: Bare options, for fields that become a program's argument on the VM.
OPTIONS = [
    "-e",
    "-c",
    "-n",
    "-rf",
    "--help",
    "--",
    "-",
    "-oProxyCommand=x",
    "--exec=x",
    "-1",
    "-x-y",
    "-.a",
]

#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Man pages from the project's single sources.

  manpages.py cli BINARY OUT.8          vaultkeeper(8) from ArgumentParser's own description of
                                        the commands (`vaultkeeper --experimental-dump-help`,
                                        the same data swift-argument-parser's generate-manual
                                        plugin renders), so --help and the man page never differ
  manpages.py config MARKDOWN OUT.5     vaultkeeper.toml(5) from docs/configuration.md

Plain man(7) macros plus tbl(1) for tables; no dependencies beyond Python 3.
"""
from __future__ import annotations

import datetime
import json
import os
import re
import subprocess
import sys

DOC_LINKS = {
    # Where files named by docs/ links end up on an installed system.
    "deploy/vaultkeeper.toml.example": "/usr/share/doc/vaultkeeper/examples/vaultkeeper.toml",
    "deploy/notify-webhook.conf": "/usr/share/doc/vaultkeeper/examples/notify-webhook.conf",
}
DOC_PAGES = {
    "configuration.md": "vaultkeeper.toml(5)",
    "operations.md": "/usr/share/doc/vaultkeeper/operations.md",
    "security.md": "/usr/share/doc/vaultkeeper/security.md",
    "architecture.md": "/usr/share/doc/vaultkeeper/architecture.md",
    "install.md": "/usr/share/doc/vaultkeeper/install.md",
    "notifications.md": "/usr/share/doc/vaultkeeper/notifications.md",
}


def source_date() -> str:
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    when = datetime.datetime.fromtimestamp(int(epoch), datetime.timezone.utc) if epoch else datetime.datetime.now(datetime.timezone.utc)
    return when.strftime("%Y-%m-%d")


def esc(text: str) -> str:
    """Escape plain text for roff (backslashes; a leading . or ' would start a request)."""
    text = text.replace("\\", "\\e")
    return text


def guard_line(line: str) -> str:
    return "\\&" + line if line.startswith((".", "'")) else line


def code(text: str) -> str:
    # \: marks places where a long token (a path, a list) may be broken in narrow table cells.
    body = re.sub(r"([/,_:.])", r"\1\\:", esc(text)).replace("-", "\\-")
    return "\\fB" + body + "\\fR"


def breakable(path: str) -> str:
    """A path in running text, with the same break points as `code` (a table cell is narrow)."""
    return re.sub(r"([/_.])", r"\1\\:", esc(path))


def inline(md: str) -> str:
    """Markdown inline markup to roff: `code`, **bold**, *emphasis*, [text](link)."""
    out = []
    pos = 0
    pattern = re.compile(r"`([^`]+)`|\*\*(.+?)\*\*|(?<![\w*])\*([^*\s][^*]*?)\*(?!\w)|\[([^\]]+)\]\(([^)]+)\)")
    for m in pattern.finditer(md):
        out.append(esc(md[pos:m.start()]))
        if m.group(1) is not None:
            out.append(code(m.group(1)))
        elif m.group(2) is not None:
            out.append("\\fB" + inline(m.group(2)) + "\\fR")
        elif m.group(3) is not None:
            out.append("\\fI" + inline(m.group(3)) + "\\fR")
        else:
            text, target = m.group(4), m.group(5)
            rendered = inline(text)
            page, _, _anchor = target.partition("#")
            base = page.split("/")[-1]
            if target.startswith(("http://", "https://")):
                rendered += f" <{esc(target)}>"
            elif page.endswith(tuple(DOC_LINKS)):
                key = next(k for k in DOC_LINKS if page.endswith(k))
                if text.strip("`") == key:
                    rendered = code(DOC_LINKS[key])
                else:
                    rendered += f" ({breakable(DOC_LINKS[key])})"
            elif base in DOC_PAGES and base != "configuration.md":
                rendered += f" ({breakable(DOC_PAGES[base])})"
            out.append(rendered)
        pos = m.end()
    out.append(esc(md[pos:]))
    return "".join(out)


def table(rows: list[list[str]]) -> list[str]:
    header, body = rows[0], rows[1:]
    cols = len(header)
    lines = [".TS", "allbox tab(\t);", " ".join(["lb"] * cols), " ".join(["l"] * (cols - 1) + ["lx"]) + "."]
    lines.append("\t".join(inline(c) for c in header))
    for row in body:
        row = (row + [""] * cols)[:cols]
        lines.append("\t".join(f"T{{\n{guard_line(inline(c))}\nT}}" for c in row))
    lines += [".TE", ".sp"]
    return lines


def split_row(line: str) -> list[str]:
    inner = line.strip().strip("|")
    cells, cur, in_code = [], "", False
    for ch in inner:
        if ch == "`":
            in_code = not in_code
        if ch == "|" and not in_code:
            cells.append(cur.strip())
            cur = ""
        else:
            cur += ch
    cells.append(cur.strip())
    return cells


def markdown_body(md: str) -> tuple[list[str], str]:
    """Converts the body; returns (roff lines, the H1 title)."""
    out: list[str] = []
    title = ""
    lines = md.splitlines()
    i = 0
    para: list[str] = []

    def flush():
        if para:
            out.append(".PP")
            out.extend(guard_line(inline(p)) for p in para)
            para.clear()

    while i < len(lines):
        line = lines[i]
        if line.startswith("```"):
            flush()
            i += 1
            out += [".PP", ".RS 4", ".nf"]
            while i < len(lines) and not lines[i].startswith("```"):
                out.append(guard_line(esc(lines[i])))
                i += 1
            out += [".fi", ".RE"]
            i += 1
            continue
        m = re.match(r"^(#{1,4})\s+(.*)$", line)
        if m:
            flush()
            level, text = len(m.group(1)), m.group(2)
            if level == 1:
                title = text
            elif level == 2:
                out.append(".SH " + json.dumps(re.sub(r"`", "", text).upper()))
            else:
                out.append(".SS " + inline(text))
            i += 1
            continue
        if line.startswith("|"):
            flush()
            rows = []
            while i < len(lines) and lines[i].startswith("|"):
                if not re.match(r"^\|[\s:|-]+\|?\s*$", lines[i]):
                    rows.append(split_row(lines[i]))
                i += 1
            out += table(rows)
            continue
        m = re.match(r"^(\s*)([-*]|\d+\.)\s+(.*)$", line)
        if m:
            flush()
            bullet = "\\(bu" if m.group(2) in "-*" else m.group(2)
            item = [m.group(3)]
            i += 1
            while i < len(lines) and lines[i].startswith("  ") and lines[i].strip() and not re.match(r"^\s*([-*]|\d+\.)\s", lines[i]):
                item.append(lines[i].strip())
                i += 1
            out.append(f'.IP "{bullet}" 4')
            out.extend(guard_line(inline(p)) for p in item)
            continue
        if not line.strip():
            flush()
            i += 1
            continue
        para.append(line.strip())
        i += 1
    flush()
    return out, title


def header(name: str, section: str, title: str, tbl: bool) -> list[str]:
    lines = ["'\\\" t"] if tbl else []
    lines += [f'.\\" Generated by packaging/manpages.py; do not edit.',
              f'.TH {name.upper()} {section} "{source_date()}" "vaultkeeper {version()}" "vaultkeeper"',
              ".nh", ".ad l"]
    return lines


_VERSION = None


def version() -> str:
    return _VERSION or "unknown"


def config_page(markdown: str) -> str:
    body, title = markdown_body(open(markdown).read())
    lines = header("vaultkeeper.toml", "5", title, tbl=True)
    lines += [".SH NAME", "vaultkeeper.toml \\- vaultkeeper configuration file", ".SH SYNOPSIS",
              code("/etc/vaultkeeper/vaultkeeper.toml"), ".SH DESCRIPTION"]
    # The text before the first "##" heading is the description.
    lines += body
    lines += [".SH FILES", ".TP", code("/etc/vaultkeeper/vaultkeeper.toml"), "the default configuration file",
              ".TP", code("/usr/share/doc/vaultkeeper/examples/vaultkeeper.toml"), "an annotated example",
              ".SH SEE ALSO", "\\fBvaultkeeper\\fR(8), \\fBsystemd-creds\\fR(1), \\fBsystemd.exec\\fR(5)"]
    return "\n".join(lines) + "\n"


def synopsis(cmd: dict, path: list[str]) -> str:
    parts = [code(" ".join(path))]
    for arg in cmd.get("arguments", []):
        if not arg.get("shouldDisplay", True) or arg.get("preferredName", {}).get("name") in ("help", "version"):
            continue
        name = arg.get("preferredName")
        token = ""
        if arg["kind"] == "positional":
            token = f"\\fI{arg.get('valueName', 'value')}\\fR"
        else:
            flag = ("-" if name["kind"] == "short" else "--") + name["name"]
            token = code(flag) + (f" \\fI{esc(arg.get('valueName', 'value'))}\\fR" if arg["kind"] == "option" else "")
        parts.append(f"[{token}]" if arg.get("isOptional") else token)
    if cmd.get("subcommands"):
        parts.append("[\\fIsubcommand\\fR]" if cmd.get("defaultSubcommand") else "\\fIsubcommand\\fR")
    return " ".join(parts)


def arguments(cmd: dict) -> list[str]:
    out = []
    for arg in cmd.get("arguments", []):
        if not arg.get("shouldDisplay", True):
            continue
        names = []
        for n in arg.get("names", []):
            names.append(code(("-" if n["kind"] == "short" else "--") + n["name"]))
        if arg["kind"] == "positional":
            names = [f"\\fI{arg.get('valueName')}\\fR"]
        head = ", ".join(names)
        if arg["kind"] == "option":
            head += f" \\fI{esc(arg.get('valueName', 'value'))}\\fR"
        text = inline(arg.get("abstract", ""))
        if arg.get("discussion"):
            text += " " + inline(arg["discussion"])
        if arg.get("defaultValue") not in (None, ""):
            text += f" (default: {code(str(arg['defaultValue']))})"
        out += [".TP", head, guard_line(text)]
    return out


def cli_page(binary: str) -> str:
    global _VERSION
    _VERSION = subprocess.run([binary, "--version"], capture_output=True, text=True, check=True).stdout.strip()
    info = json.loads(subprocess.run([binary, "--experimental-dump-help"], capture_output=True, text=True, check=True).stdout)
    root = info["command"]
    lines = header("vaultkeeper", "8", "", tbl=False)
    lines += [".SH NAME", f"vaultkeeper \\- {inline(root['abstract'][0].lower() + root['abstract'][1:].rstrip('.'))}",
              ".SH SYNOPSIS", code("vaultkeeper") + " [\\fIcommand\\fR] [\\fIoptions\\fR]",
              ".PP", "Without a command, " + code("vaultkeeper") + " runs the daemon (" + code("vaultkeeper run") + ").",
              ".SH DESCRIPTION"]
    lines.append(guard_line(inline(root.get("discussion", ""))))
    lines += [".PP", "The daemon normally runs as the systemd unit " + code("vaultkeeper.service") +
              "; see " + code("/usr/share/doc/vaultkeeper/install.md") + " and \\fBvaultkeeper.toml\\fR(5)."]
    lines += [".SH OPTIONS"] + arguments(root)
    lines.append(".SH COMMANDS")

    def walk(cmd: dict, path: list[str]):
        for sub in cmd.get("subcommands", []):
            if sub.get("shouldDisplay") is False or sub["commandName"] == "help":
                continue
            p = path + [sub["commandName"]]
            lines.extend([".SS " + code(" ".join(p[1:])), guard_line(synopsis(sub, p)), ".PP", guard_line(inline(sub.get("abstract", "")))])
            if sub.get("discussion"):
                lines.extend([".PP", guard_line(inline(sub["discussion"]))])
            args = [a for a in sub.get("arguments", []) if a.get("preferredName", {}).get("name") not in ("help", "version")]
            if args:
                lines.extend([".RS 4"] + arguments({"arguments": args}) + [".RE"])
            walk(sub, p)

    walk(root, ["vaultkeeper"])
    lines += [".SH FILES",
              ".TP", code("/etc/vaultkeeper/vaultkeeper.toml"), "configuration, see \\fBvaultkeeper.toml\\fR(5)",
              ".TP", code("/etc/credstore.encrypted/unseal-keys"), "the unseal key shares as an encrypted systemd credential (" + code("systemd-creds encrypt --name=unseal-keys") + ")",
              ".TP", code("/run/vaultkeeper/state.json"), "the running daemon's view, read by " + code("vaultkeeper status"),
              ".TP", code("/usr/lib/systemd/catalog/vaultkeeper.catalog"), "explanations shown by " + code("journalctl -x"),
              ".SH EXIT STATUS",
              ".TP", "0", "success",
              ".TP", "64", "usage error",
              ".TP", "65", "key file content invalid",
              ".TP", "69", "a Vault node could not be unsealed or reached (one-shot commands)",
              ".TP", "70", "internal error",
              ".TP", "77", "key file insecure or unreadable; the unit does not restart (RestartPreventExitStatus=)",
              ".TP", "78", "configuration error; the unit does not restart",
              ".PP", code("vaultkeeper check") + " uses the Monitoring Plugins codes 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.",
              ".SH SEE ALSO",
              "\\fBvaultkeeper.toml\\fR(5), \\fBsystemctl\\fR(1), \\fBjournalctl\\fR(1), \\fBsystemd-creds\\fR(1), \\fBsystemd.service\\fR(5)"]
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    global _VERSION
    if len(argv) != 4 or argv[1] not in ("cli", "config"):
        print(__doc__, file=sys.stderr)
        return 64
    if argv[1] == "cli":
        text = cli_page(argv[2])
    else:
        _VERSION = os.environ.get("VAULTKEEPER_VERSION")
        text = config_page(argv[2])
    with open(argv[3], "w") as f:
        f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

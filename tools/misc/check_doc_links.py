"""Check that every relative link in the repository's Markdown files resolves.

``python tools/misc/check_doc_links.py`` walks every ``*.md`` outside ``.venv``,
``.git``, ``data`` and ``work_dirs``, ignores fenced code blocks and absolute
URLs, and checks that each ``[text](path)`` / ``![alt](path)`` target exists
relative to the file, and that a ``#fragment`` into a Markdown file names one
of its headings (GitHub's slug rule). Exits 1 and lists the broken links.
"""
import pathlib
import re
import sys

SKIP = {'.venv', '.git', 'data', 'work_dirs'}
LINK = re.compile(r'!?\[[^\]]*\]\(([^)\s]+)\)')


def slug(heading):
    return re.sub(r'[^\w\- ]', '', heading).strip().lower().replace(' ', '-')


def broken_links(root):
    bad, count = [], 0
    for md in sorted(root.rglob('*.md')):
        if SKIP.intersection(md.relative_to(root).parts):
            continue
        text = re.sub(r'```.*?```', '', md.read_text(encoding='utf-8'), flags=re.S)
        for match in LINK.finditer(text):
            target = match.group(1)
            if re.match(r'[a-z]+://|mailto:', target):
                continue
            count += 1
            path, _, frag = target.partition('#')
            dest = (md.parent / path) if path else md
            if not dest.exists():
                bad.append(f'{md.relative_to(root)}: missing {target}')
            elif frag and dest.suffix == '.md':
                heads = re.findall(r'^#+\s+(.*)$', dest.read_text(encoding='utf-8'), flags=re.M)
                if frag not in {slug(h) for h in heads}:
                    bad.append(f'{md.relative_to(root)}: no heading #{frag} in {path or md.name}')
    return bad, count


def main():
    root = pathlib.Path(__file__).resolve().parents[2]
    bad, count = broken_links(root)
    print('\n'.join(bad))
    print(f'{count} relative links checked, {len(bad)} broken')
    return 1 if bad else 0


if __name__ == '__main__':
    sys.exit(main())

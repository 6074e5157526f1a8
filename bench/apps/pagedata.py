"""The data the Flask and Django views render (bench/apps/templates/page.html), and the
page they must produce: check.py compares the served page with expected_page()."""

from html import escape

TITLE = "Order summary"
USER = "Ada & <Bob>"                      # both template engines must escape it
FOOTER = "Thank you for shopping with us."
N_ITEMS = 10


def context():
    """A fresh context per request, as a view that builds it from its data would."""
    items = [{"name": f"item {i}", "qty": i % 3 + 1, "price": f"{i * 1.25 + 2:.2f}"}
             for i in range(N_ITEMS)]
    return {"title": TITLE, "user": USER, "count": len(items), "items": items, "footer": FOOTER}


def expected_page():
    """The page, built without a template engine."""
    c = context()
    lis = "".join(f"<li>{escape(i['name'])}: {i['qty']} x {i['price']}</li>\n" for i in c["items"])
    return (f"<!doctype html>\n<html><head><title>{c['title']}</title></head>\n<body>\n"
            f"<h1>{c['title']}</h1>\n"
            f"<p>Hello, {escape(c['user'], quote=False)}! You have {c['count']} items in your cart.</p>\n"
            f"<ul>\n{lis}</ul>\n<p>{c['footer']}</p>\n</body></html>").encode()

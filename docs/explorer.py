"""Screenshots of the interactive explorer (dagnet.viz.html) for the README: LeNet's compiled
plan with per-step time as heat and a fused step's details, resnet_small's plan with its
memory chart following the pointer, ResNet-50 with its stages folded and one bottleneck
found by name, and the compiler passes on the slider.

    python docs/explorer.py --out docs/explorer          # the committed screenshots
    python docs/explorer.py --out /tmp/explorer --pages  # the HTML pages beside them

Needs the `browser` extra (pip install -e '.[browser]') and a Chromium (apt-get install chromium).
"""
import argparse
import os
import tempfile

import dagnet  # before numpy: it tunes OpenBLAS's threads (dagnet/procenv.py)
from dagnet.compiler.feeds import random_feeds
from dagnet.models import get_model
from dagnet.viz.html import browser, explorer_html, write_html


def shoot(b, html_path, png_path, actions):
    page, watch = browser.open_page(b, html_path, width=1500, height=1250)
    actions(page)
    page.wait_for_timeout(150)  # a repaint after the last pan is one animation frame away
    page.screenshot(path=png_path)
    assert not watch.errors and not watch.requests, (watch.errors, watch.requests)
    page.close()
    print(f"wrote {png_path}")


def lenet(page):
    page.check("#show-backward")
    page.evaluate("window.__dagnet.go('step:1')")  # the fused conv+relu+pool with the sparse backward
    page.click("#fit")


def resnet(page):
    page.evaluate("window.__dagnet.go('block3.add')")  # the block whose shortcut is a 1x1 conv
    page.locator('[data-id="n:block3.add"]').hover()  # the memory chart shows what is alive there


def resnet50(page):
    page.evaluate("window.__dagnet.go('stage3.block4.conv2')")  # a bottleneck deep in a folded stage


def passes(page):
    page.click('button[data-view="passes"]')
    page.locator("#pass-slider").fill("4")  # after fuse: what was added, removed, changed
    page.click("#fit")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="folder for the PNGs")
    ap.add_argument("--pages", action="store_true", help="keep the HTML pages there too")
    args = ap.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    pages = args.out if args.pages else tempfile.mkdtemp(prefix="explorer_pages_")
    at = lambda name: os.path.join(pages if name.endswith(".html") else args.out, name)  # noqa: E731
    plan = dagnet.compile(get_model("lenet"))
    timings = plan.profile(random_feeds(plan, batch=64), repeats=20)  # best of 20
    write_html(explorer_html(plan, timings=timings), at("lenet.html"))
    write_html(explorer_html(dagnet.compile(get_model("resnet_small"))), at("resnet_small.html"))
    write_html(explorer_html(dagnet.compile(get_model("resnet50"))), at("resnet50.html"))
    with browser.chromium() as b:
        shoot(b, at("lenet.html"), at("lenet.png"), lenet)
        shoot(b, at("resnet_small.html"), at("resnet_small.png"), resnet)
        shoot(b, at("resnet50.html"), at("resnet50.png"), resnet50)
        shoot(b, at("lenet.html"), at("passes.png"), passes)


if __name__ == "__main__":
    main()

#!/bin/sh
here="$(cd "$(dirname "$0")/.." && pwd)"
cat "$here/share/hello-kiln/greeting.txt"

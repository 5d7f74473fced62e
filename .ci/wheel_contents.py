"""Check that a wheel holds every file of the package that git tracks: ``wheel_contents.py WHEEL < file-list``."""

import sys
import zipfile

tracked = [line.strip().removeprefix("src/") for line in sys.stdin if line.strip()]
shipped = set(zipfile.ZipFile(sys.argv[1]).namelist())
missing = [name for name in tracked if name not in shipped]
if not tracked:
    sys.exit("No tracked package files were listed (is this a git checkout?).")
if missing:
    sys.exit(f"{sys.argv[1]} lacks {len(missing)} package files, e.g. {missing[:10]}")
print(f"{sys.argv[1]}: all {len(tracked)} package files inside")

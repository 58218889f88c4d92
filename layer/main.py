"""Run by the layer's launcher; the layer's own directory is sys.path[0], so only its packages are seen."""

from extension.cli import main

raise SystemExit(main())

from extension.cli import main

raise SystemExit(main())

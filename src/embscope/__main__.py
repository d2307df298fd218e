from embscope.cli import main

raise SystemExit(main())

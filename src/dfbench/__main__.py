from dfbench.cli import main

raise SystemExit(main())

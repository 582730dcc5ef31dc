from epicme.cli import main

raise SystemExit(main())

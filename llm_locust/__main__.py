from llm_locust.cli import main

raise SystemExit(main())

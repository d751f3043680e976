from wool.worker.process import main

main()

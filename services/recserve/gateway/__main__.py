from recserve.gateway.app import main

main()

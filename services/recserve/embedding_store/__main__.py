from recserve.embedding_store.app import main

main()
